"""`make bench`: every benchmark in turn, each printing its figures against its target."""

from benchmarks import (
    accuracy,
    alerts,
    analyzers,
    drill,
    generator,
    kube_watch_latency,
    pitr,
    plugin_overhead,
    reports,
    samplers,
    sandbox,
    scaleout,
    soak,
)

if __name__ == "__main__":
    for bench in (sandbox, drill, accuracy, generator, scaleout, analyzers, reports, samplers, kube_watch_latency,
                  plugin_overhead, alerts, pitr, soak):  # fmt: skip
        print(f"\n== {bench.__name__} ==", flush=True)
        bench.main()
