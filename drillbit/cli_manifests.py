"""``drill manifests check``: the deployment manifests under test (see ``drillbit.manifests``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from drillbit.core.project import current
from drillbit.manifests import check_manifests, write_outputs
from drillbit.manifests.check import DEFAULT_KUBE_VERSION, FAIL_ON

__all__ = ["DEFAULT_MANIFESTS", "register"]

DEFAULT_MANIFESTS = Path("infra/k8s/overlays/staging")


def _say(msg: str) -> None:
    typer.echo(msg, err=True)


def register(app: typer.Typer) -> None:
    manifests_app = typer.Typer(no_args_is_help=True, help="Check the deployment manifests under test.")
    app.add_typer(manifests_app, name="manifests")

    @manifests_app.command("check")
    def check_command(
        path: Annotated[Path | None, typer.Argument(
            help="A kustomize overlay, a directory of YAML files or one file (default: the project's "
                 "infra/k8s/overlays/staging).")] = None,
        out: Annotated[Path, typer.Option(
            help="Where manifests-check.json and manifests-check.junit.xml go.")] = Path("runs/manifests-check"),
        fail_on: Annotated[str, typer.Option(help=f"Exit 1 on a finding of this severity or worse: "
                                                  f"{', '.join(FAIL_ON)}.")] = "error",
        kube_version: Annotated[str, typer.Option(help="Kubernetes version of the schemas.")] = DEFAULT_KUBE_VERSION,
        no_checkov: Annotated[bool, typer.Option("--no-checkov", help="Skip checkov's checks (said in the "
                                                                     "report, never silent).")] = False,
    ) -> None:  # fmt: skip
        """Render (kustomize), validate against the Kubernetes schemas offline, run checkov's Kubernetes
        checks and drillbit's resilience rules. Exit 0 clean, 1 findings at or above --fail-on, 2 bad input."""
        project = current()
        target = path if path is not None else project.find(*DEFAULT_MANIFESTS.parts)
        result = check_manifests(target, kube_version=kube_version, fail_on=fail_on, checkov=not no_checkov,
                                 project_root=project.root)  # fmt: skip
        for f in result.findings:
            _say(f"{f.severity.upper():7} {f.rule} {f.object} ({f.file}): {f.message}")
        js, junit = write_outputs(result, out)
        counts = result.counts()
        checkov = f"checkov {result.checkov}" if result.checkov else "checkov not run"
        _say(f"{result.rendered.path}: {len(result.rendered.objects)} objects (rendered sha256 "
             f"{result.rendered.rendered_sha256[:12]}), {counts['error']} error(s), {counts['warning']} warning(s), "
             f"{counts['info']} info; Kubernetes {result.kube_version} schemas, {checkov}; {js}, {junit}")  # fmt: skip
        typer.echo(str(js))
        raise typer.Exit(result.exit_code)
