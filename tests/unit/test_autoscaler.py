"""The sandbox autoscaler's decision rule (Kubernetes HPA semantics) on known inputs."""

from drillbit.targets.sandbox.autoscaler import Policy, Recommender

POLICY = Policy(min_replicas=2, max_replicas=6, target=50, scale_down_stabilization_s=30)


def test_scales_out_by_the_hpa_ratio_rounding_up() -> None:
    assert Recommender(POLICY).decide(current=2, utilisation=90, now=0) == 4  # ceil(2 * 90 / 50)


def test_stays_within_tolerance_and_bounds() -> None:
    r = Recommender(POLICY)
    assert r.decide(current=3, utilisation=54, now=0) == 3  # ratio 1.08: inside the 10 % tolerance
    assert r.decide(current=5, utilisation=100, now=1) == 6  # capped at max
    assert Recommender(POLICY).decide(current=2, utilisation=1, now=0) == 2  # floored at min


def test_scale_down_waits_for_the_stabilization_window() -> None:
    r = Recommender(POLICY)
    assert r.decide(current=2, utilisation=100, now=0) == 4
    assert r.decide(current=4, utilisation=10, now=10) == 4  # the recommendation of t=0 still counts
    assert r.decide(current=4, utilisation=10, now=29) == 4
    assert r.decide(current=4, utilisation=10, now=31) == 2  # t=0 left the window
