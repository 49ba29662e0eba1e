"""`make bench`: run every benchmark in turn."""

from benchmarks import sandbox

if __name__ == "__main__":
    sandbox.main()
