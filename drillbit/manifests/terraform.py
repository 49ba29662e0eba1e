"""The platform's Terraform under test (``infra/terraform``), checked offline: ``terraform fmt -check``,
checkov's Terraform checks (with the tree's committed baseline) and drillbit's own parse-level rules
(python-hcl2: nothing is planned, no provider is downloaded).

The rules read the configuration as written, so what they cannot prove from it is a finding, never a
pass: a count that comes from a variable counts only as far as the variable's ``validation`` block
guarantees (``length(var.azs) >= 2``, ``var.backup_retention_days >= 7``), since a caller may pass
anything else. A root module is a directory of the tree no other module calls; the local modules it
calls (``source = "../../modules/x"``) are read too, even from outside the tree.

- DRILL-TF-001 (R1.5): multi-AZ everywhere: subnets, NAT gateways, node groups, EKS control planes,
  DB subnet groups, Aurora instances and load balancers span at least 2 AZs;
- DRILL-TF-002 (R9.1, R9.2): automated backups (and so PITR) kept at least 7 days;
- DRILL-TF-003 (R13.1, R9.3): a second region: two aws provider configurations with different
  regions, each used; VPCs, EKS clusters and databases in both; the database one global database;
  Route 53 failover records in PRIMARY/SECONDARY pairs with health checks (a root deploying nothing to
  AWS, such as an offline sandbox root, has no AWS region to double);
- DRILL-TF-004 (R14.2): every alarm an experiment names as a stop condition exists (names given);
- DRILL-TF-005 (R9.5): a root module has every output drillbit's targets read (``REQUIRED_OUTPUTS``);
- DRILL-TF-006 (R12.1): every skipped checkov check carries a reason (inline ``#checkov:skip=ID:why``
  and each entry of the baseline, which checkov itself leaves without one: a ``reason`` key).

``python -m drillbit.manifests.terraform infra/terraform [--alarm NAME ...]`` runs all three checks,
prints every finding and exits 0 clean, 1 a finding at error, 2 bad input (HCL that does not parse).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drillbit.core.errors import ConfigError
from drillbit.manifests.check import _offline_env, find_checkov
from drillbit.manifests.rules import Finding

__all__ = [
    "ALARM_RESOURCES",
    "BASELINE_NAME",
    "REQUIRED_OUTPUTS",
    "RULES",
    "Block",
    "TerraformCheck",
    "TfModule",
    "TfRule",
    "TfTree",
    "check_terraform",
    "inline_skips",
    "load_tree",
    "main",
    "run_checkov",
    "run_fmt",
    "run_rules",
]

# what drillbit's targets read from `terraform output -json` (envs/staging and the sandbox root alike)
REQUIRED_OUTPUTS = (
    "regions", "cluster_names", "kube_contexts", "cluster_endpoints", "db_global_cluster_id", "db_cluster_ids",
    "health_check_ids", "alarm_names", "api_url",
)  # fmt: skip
ALARM_RESOURCES = ("aws_cloudwatch_metric_alarm", "aws_cloudwatch_composite_alarm")
BASELINE_NAME = ".checkov.baseline"
MIN_AZS, MIN_RETENTION_DAYS = 2, 7
REGIONAL = ("aws_vpc", "aws_eks_cluster", "aws_rds_cluster")  # each one deployed must be in 2 regions
TERRAFORM_ENV = "DRILL_TERRAFORM"
TIMEOUT_S = 300.0
_SKIP = re.compile(r"#\s*checkov:skip=([A-Za-z0-9_]+)(?::(.*))?")


# --- the configuration, as parsed --------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """One top-level block: ``resource "type" "name"``, ``module "name"``, ``variable "name"``..."""

    kind: str  # resource | data | module | variable | output | provider
    type: str  # the resource or data type, the provider's name; "" otherwise
    name: str
    body: dict[str, Any]
    file: str  # as displayed: path:line

    @property
    def address(self) -> str:
        if self.kind == "resource":
            return f"{self.type}.{self.name}"
        if self.kind == "data":
            return f"data.{self.type}.{self.name}"
        return f"{self.kind}.{self.name}"


@dataclass
class TfModule:
    """One directory's ``*.tf`` files."""

    path: Path
    blocks: list[Block] = field(default_factory=list)
    locals: dict[str, Any] = field(default_factory=dict)

    def of(self, kind: str, type_: str | None = None) -> list[Block]:
        return [b for b in self.blocks if b.kind == kind and (type_ is None or b.type == type_)]

    def get(self, kind: str, name: str, type_: str = "") -> Block | None:
        return next((b for b in self.blocks if b.kind == kind and b.name == name and b.type == type_), None)

    @property
    def display(self) -> str:
        return _display(self.path)


@dataclass
class TfTree:
    """Every module under the checked path, and every local module they call."""

    path: Path
    modules: dict[Path, TfModule]

    def callee(self, module: TfModule, call: Block) -> TfModule | None:
        source = call.body.get("source")
        if not isinstance(source, str) or not source.startswith(("./", "../")):
            return None  # a registry or remote module: not read
        return self.modules.get((module.path / source).resolve())

    def roots(self) -> list[TfModule]:
        called = {c.path for m in self.modules.values() for call in m.of("module") if (c := self.callee(m, call))}
        under = self.path.resolve()
        return [m for p, m in sorted(self.modules.items()) if p not in called and p.is_relative_to(under)]

    def callers(self, module: TfModule) -> Iterator[tuple[TfModule, Block]]:
        for m in self.modules.values():
            for call in m.of("module"):
                if self.callee(m, call) is module:
                    yield m, call


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _parse(path: Path) -> dict[str, Any]:
    try:
        import hcl2  # the parser (lark) is loaded only for a check; a dev dependency
    except ImportError:
        raise ConfigError(_display(path), "cannot be read: python-hcl2 is not installed (a dev dependency)") from None

    try:
        options = hcl2.SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)
        return dict(hcl2.loads(path.read_text(encoding="utf-8"), serialization_options=options))
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(_display(path), f"cannot be read: {err}") from None
    except Exception as err:  # noqa: BLE001 - lark raises many types; every one means "does not parse"
        raise ConfigError(_display(path), f"is not valid HCL: {' '.join(str(err).split())[:300]}") from None


def _line(text: str, kind: str, labels: Sequence[str], nth: int = 0) -> int:
    """The line the ``nth`` block ``kind "label"...`` starts on (1 when it cannot be found)."""
    pattern = r"^\s*" + re.escape(kind) + "".join(r'\s+"' + re.escape(lab) + '"' for lab in labels) + r"\s*\{"
    found = list(re.finditer(pattern, text, re.MULTILINE))
    return text.count("\n", 0, found[nth].start()) + 1 if nth < len(found) else 1


def _blocks(path: Path, parsed: dict[str, Any]) -> Iterator[Block]:
    text = path.read_text(encoding="utf-8")
    where = _display(path)
    for kind in ("resource", "data"):
        for entry in parsed.get(kind) or []:
            for type_, named in entry.items():
                for name, body in named.items():
                    yield Block(kind, type_, name, body, f"{where}:{_line(text, kind, [type_, name])}")
    for kind in ("module", "variable", "output"):
        for entry in parsed.get(kind) or []:
            for name, body in entry.items():
                yield Block(kind, "", name, body, f"{where}:{_line(text, kind, [name])}")
    seen: dict[str, int] = {}
    for entry in parsed.get("provider") or []:
        for type_, body in entry.items():
            line = _line(text, "provider", [type_], seen.get(type_, 0))
            seen[type_] = seen.get(type_, 0) + 1
            yield Block("provider", type_, str(body.get("alias") or ""), body, f"{where}:{line}")


def _load_module(directory: Path) -> TfModule:
    module = TfModule(directory)
    for path in sorted(directory.glob("*.tf")):
        parsed = _parse(path)
        module.blocks += list(_blocks(path, parsed))
        for entry in parsed.get("locals") or []:
            module.locals.update(entry)
    return module


def load_tree(path: Path | str) -> TfTree:
    """Parse every directory of ``*.tf`` files under ``path`` and every local module they call."""
    root = Path(path)
    if not root.is_dir():
        raise ConfigError(str(path), "is not a directory of Terraform modules")
    todo = sorted({p.parent.resolve() for p in root.rglob("*.tf") if ".terraform" not in p.parts})
    if not todo:
        raise ConfigError(str(path), "holds no *.tf file")
    tree = TfTree(root, {})
    while todo:
        directory = todo.pop()
        if directory in tree.modules:
            continue
        module = tree.modules[directory] = _load_module(directory)
        for call in module.of("module"):
            source = call.body.get("source")
            if isinstance(source, str) and source.startswith(("./", "../")):
                if not (target := (directory / source).resolve()).is_dir():
                    raise ConfigError(call.file, f"module {call.name!r}: source {source!r} is not a directory")
                todo.append(target)
    return tree


# --- reading expressions ------------------------------------------------------------------------------


def _expr(value: Any) -> str | None:
    """The expression of ``"${...}"`` when the whole value is one; None for a literal or a template."""
    if not (isinstance(value, str) and value.startswith("${") and value.endswith("}")):
        return None
    depth = 0
    for ch in value[2:-1]:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return None  # "${a}-${b}": a template of two
    return value[2:-1].strip() if depth == 0 else None


def _iterates(value: Any) -> bool:
    """The value differs per instance (it reads ``each.`` or ``count.index``)."""
    text = json.dumps(value)
    return "each." in text or "count.index" in text


_WRAPPERS = re.compile(r"^(?:toset|tolist|values|keys|sort|compact)\((.*)\)$", re.DOTALL)
_FOR = re.compile(r"^[\[{]\s*for\s+[\w\s,]+\s+in\s+(.+?)\s*:(.*)[\]}]$", re.DOTALL)
_SPLAT = re.compile(r"^(.*?)(?:\[\*\](?:\.\w+)*)$", re.DOTALL)
_REF = re.compile(r"^(var|local|module)\.([\w.]+)$|^([a-z][a-z0-9]*_[\w]+)\.(\w+)$")


def _validation_bound(module: TfModule, path: str, length: bool) -> float | None:
    """The lower bound a variable's validation guarantees: ``length(var.PATH) >= n`` or ``var.PATH >= n``
    (``> n`` counts as n + 1), ignoring a condition with ``||`` in it."""
    var = module.get("variable", path.split(".")[0])
    if var is None:
        return None
    ref = re.escape(f"var.{path}")
    subject = rf"length\(\s*{ref}\s*\)" if length else rf"(?<![\w.(]){ref}(?![\w.\[])"
    best: float | None = None
    for v in var.body.get("validation") or []:
        condition = _expr(v.get("condition")) or ""
        if "||" in condition:
            continue
        for op, n in re.findall(subject + r"\s*(>=|>)\s*(\d+(?:\.\d+)?)", condition):
            bound = float(n) + (1 if op == ">" else 0)
            best = bound if best is None else max(best, bound)
    return best


def _min_len(tree: TfTree, module: TfModule, value: Any, depth: int = 0) -> int | None:
    """The fewest elements ``value`` can have, or None when the configuration does not say."""
    if isinstance(value, (list, dict)):
        return len(value)
    expr = _expr(value)
    if expr is None or depth > 20:
        return None
    if (m := _WRAPPERS.match(expr)) or (m := _SPLAT.match(expr)):
        return _min_len(tree, module, "${" + m.group(1) + "}", depth + 1)
    if (m := _FOR.match(expr)) and " if " not in m.group(2):
        return _min_len(tree, module, "${" + m.group(1) + "}", depth + 1)
    if expr.startswith("[") and expr.endswith("]"):  # a tuple written inside an expression: toset(["a", "b"])
        return len(_top_level_items(expr[1:-1]))
    if not (m := _REF.match(expr)):
        return None
    if m.group(1) == "var":
        bound = _validation_bound(module, m.group(2), length=True)
        return None if bound is None else int(bound)
    if m.group(1) == "local":
        return _min_len(tree, module, module.locals.get(m.group(2)), depth + 1) if "." not in m.group(2) else None
    if m.group(1) == "module":
        name, _, output = m.group(2).partition(".")
        call = module.get("module", name)
        child = tree.callee(module, call) if call else None
        out = child.get("output", output) if child and output and "." not in output else None
        return _min_len(tree, child, out.body.get("value"), depth + 1) if child and out else None
    resource = module.get("resource", m.group(4), m.group(3))
    return _instances(tree, module, resource) if resource else None


def _top_level_items(text: str) -> list[str]:
    """The comma-separated items of ``text`` outside brackets, braces, parentheses and strings."""
    items, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(text):
        if ch == '"' and (i == 0 or text[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and ch in "([{":
            depth += 1
        elif not quoted and ch in ")]}":
            depth -= 1
        elif not quoted and depth == 0 and ch == ",":
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return [item for item in items if item.strip()]


def _min_num(tree: TfTree, module: TfModule, value: Any) -> float | None:
    """The smallest number ``value`` can be, or None when the configuration does not say."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    expr = _expr(value)
    if expr is None:
        return None
    if m := re.fullmatch(r"length\((.*)\)", expr, re.DOTALL):
        return _min_len(tree, module, "${" + m.group(1) + "}")
    if m := re.fullmatch(r"var\.([\w.]+)", expr):
        return _validation_bound(module, m.group(1), length=False)
    return None


def _instances(tree: TfTree, module: TfModule, block: Block) -> int | None:
    if "count" in block.body:
        n = _min_num(tree, module, block.body["count"])
        return None if n is None else int(n)
    if "for_each" in block.body:
        return _min_len(tree, module, block.body["for_each"])
    return 1


def _first(value: Any) -> dict[str, Any]:
    """A nested block (``vpc_config { ... }``) parses as a list of one dict."""
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return value[0]
    return value if isinstance(value, dict) else {}


# --- the rules ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TfRule:
    id: str
    requirement: str
    title: str
    fix: str
    check: Callable[[TfTree, Sequence[str]], Iterator[tuple[str, str, str]]]  # (object, file, problem)
    severity: str = "error"


# (resource type, the attribute holding its subnets or AZs, or "" when the instances are the spread)
_SPREAD = (
    ("aws_eks_node_group", "subnet_ids"), ("aws_eks_cluster", "vpc_config.subnet_ids"),
    ("aws_db_subnet_group", "subnet_ids"), ("aws_lb", "subnets"), ("aws_autoscaling_group", "vpc_zone_identifier"),
    ("aws_rds_cluster_instance", ""), ("aws_nat_gateway", "subnet_id"), ("aws_subnet", "availability_zone"),
)  # fmt: skip


def _attr(body: dict[str, Any], dotted: str) -> Any:
    head, _, rest = dotted.partition(".")
    return _attr(_first(body.get(head)), rest) if rest else body.get(head)


def _spread(tree: TfTree, module: TfModule, block: Block, attr: str) -> str | None:
    """What keeps ``block`` in fewer than 2 AZs, or None when it spans them."""
    n = _instances(tree, module, block)
    if not attr:  # the instances are the spread (Aurora places them over its subnet group's AZs)
        if n is not None and n >= MIN_AZS:
            return None
        return f"{'an unproven number of' if n is None else n} instance(s): losing its AZ loses them all"
    value = _attr(block.body, attr)
    if value is None:  # the other ways to say it
        value = block.body.get({"aws_subnet": "availability_zone_id", "aws_lb": "subnet_mapping"}.get(block.type, ""))
    if attr in ("subnet_id", "availability_zone") or (_iterates(value) and n != 1):
        # one per instance: the instances must be at least 2, each its own
        if n is not None and n >= MIN_AZS and _iterates(value):
            return None
        what = f"{attr} = {json.dumps(value)}" if value is not None else f"no {attr}"
        return (f"{what} over {'an unproven number of' if n is None else n} instance(s): one AZ "
                f"(iterate it over the AZs, with a variable validated to length >= {MIN_AZS})")  # fmt: skip
    k = _min_len(tree, module, value)
    if k is not None and k >= MIN_AZS:
        return None
    shown = json.dumps(value) if value is not None else "(unset)"
    how = "cannot be shown to span" if k is None else f"{k} subnet(s), not"
    return (f"{attr} = {shown}: {how} >= {MIN_AZS} AZs (give a literal list, or a variable whose validation "
            f"requires length >= {MIN_AZS})")  # fmt: skip


def _short_lists(tree: TfTree, module: TfModule) -> Iterator[tuple[str, str, str]]:
    """A module call passing a literal list shorter than the called module's validation requires (>= 2):
    offline, before a plan would refuse it."""
    for call in module.of("module"):
        if (child := tree.callee(module, call)) is None:
            continue
        for name, value in call.body.items():
            bound = _validation_bound(child, name, length=True) if child.get("variable", name) else None
            if bound is not None and bound >= MIN_AZS and isinstance(value, (list, dict)) and len(value) < bound:
                yield call.address, call.file, f"passes {name} = {json.dumps(value)}: {child.display} requires " \
                                               f"length >= {bound:g}"  # fmt: skip


def _multi_az(tree: TfTree, names: Sequence[str]) -> Iterator[tuple[str, str, str]]:
    for module in tree.modules.values():
        for type_, attr in _SPREAD:
            for block in module.of("resource", type_):
                if problem := _spread(tree, module, block, attr):
                    yield block.address, block.file, problem
        yield from _short_lists(tree, module)


def _retention(tree: TfTree, names: Sequence[str]) -> Iterator[tuple[str, str, str]]:
    for module in tree.modules.values():
        for block in module.of("resource", "aws_rds_cluster") + module.of("resource", "aws_db_instance"):
            value = block.body.get("backup_retention_period")
            days = _min_num(tree, module, value)
            if value is None:
                yield block.address, block.file, "no backup_retention_period: the default keeps 1 day of backups"
            elif days is None:
                yield block.address, block.file, (f"backup_retention_period = {json.dumps(value)} cannot be shown to "
                                                  f"be >= {MIN_RETENTION_DAYS} (validate the variable: "
                                                  f">= {MIN_RETENTION_DAYS})")  # fmt: skip
            elif days < MIN_RETENTION_DAYS:
                yield block.address, block.file, f"backup_retention_period {days:g} days < {MIN_RETENTION_DAYS}"
            if days is not None and (m := re.fullmatch(r"var\.(\w+)", _expr(value) or "")):
                yield from _passed_below(tree, module, m.group(1), block)


def _passed_below(tree: TfTree, module: TfModule, name: str, block: Block) -> Iterator[tuple[str, str, str]]:
    """A caller passing a literal retention below the minimum (a plan would refuse it: this says so offline)."""
    for _caller, call in tree.callers(module):
        value = call.body.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < MIN_RETENTION_DAYS:
            yield call.address, call.file, (f"passes {name} = {value} to {module.display} ({block.address}'s "
                                            f"backup_retention_period): < {MIN_RETENTION_DAYS} days")  # fmt: skip


@dataclass(frozen=True)
class _Placed:
    block: Block
    module: TfModule
    provider: str  # the root's provider configuration, e.g. aws.secondary


def _placed(tree: TfTree, module: TfModule, providers: dict[str, str], seen: int = 0) -> Iterator[_Placed]:
    """Every resource reachable from ``module``, with the root provider configuration it runs under."""
    for block in module.of("resource"):
        local = _expr(block.body.get("provider")) or block.type.split("_")[0]
        yield _Placed(block, module, providers.get(local, local))
    for call in module.of("module"):
        child = tree.callee(module, call)
        if child is None or seen > 20:
            continue
        given = call.body.get("providers")
        if isinstance(given, dict):
            mapping = {k: providers.get(_expr(v) or str(v), _expr(v) or str(v)) for k, v in given.items()}
        else:  # no providers argument: the defaults are inherited
            mapping = {k: v for k, v in providers.items() if "." not in k}
        yield from _placed(tree, child, mapping, seen + 1)


def _region_of(root: TfModule, provider: Block) -> str:
    value = provider.body.get("region")
    expr = _expr(value)
    if expr and (m := re.fullmatch(r"var\.(\w+)", expr)) and (var := root.get("variable", m.group(1))):
        default = var.body.get("default")
        return str(default) if isinstance(default, str) else expr
    return str(value if expr is None else expr)


def _second_region(tree: TfTree, names: Sequence[str]) -> Iterator[tuple[str, str, str]]:
    for root in tree.roots():
        aws = root.of("provider", "aws")
        configs = {("aws." + p.name if p.name else "aws"): p for p in aws}
        regions = {key: _region_of(root, p) for key, p in configs.items()}
        placed = list(_placed(tree, root, {key: key for key in configs}))
        if not configs and not any(x.block.type.startswith("aws_") for x in placed):
            continue  # a root that deploys nothing to AWS (the offline sandbox root): no AWS region to double
        where = f"{root.display}/"
        if len(set(regions.values())) < 2:
            yield root.display, where, (f"{len(configs)} aws provider configuration(s) in region(s) "
                                        f"{sorted(set(regions.values())) or '-'}: a second region needs a second "
                                        "provider configuration with another region")  # fmt: skip
        for key, p in configs.items():
            if not any(x.provider == key for x in placed):
                yield f"provider.{key}", p.file, f"nothing is deployed with {key} ({regions[key]}): the region is empty"
        for type_ in REGIONAL:
            mine = [x for x in placed if x.block.type == type_]
            where_to = {regions.get(x.provider, x.provider) for x in mine}
            if mine and len(where_to) < 2:
                yield type_, mine[0].block.file, f"every {type_} is in one region ({', '.join(sorted(where_to))})"
        yield from _global_database(placed, regions)
        yield from _failover_pairs(tree, placed)


def _global_database(placed: list[_Placed], regions: dict[str, str]) -> Iterator[tuple[str, str, str]]:
    clusters = [x for x in placed if x.block.type == "aws_rds_cluster"]
    if not clusters:
        return
    if not any(x.block.type == "aws_rds_global_cluster" for x in placed):
        yield clusters[0].block.address, clusters[0].block.file, ("no aws_rds_global_cluster: the regions' databases "
                                                                  "are not replicated to each other")  # fmt: skip
    joined = {regions.get(x.provider, x.provider) for x in clusters if x.block.body.get("global_cluster_identifier")}
    if len(joined) < 2:
        yield clusters[0].block.address, clusters[0].block.file, (f"clusters joined to a global database in "
                                                                  f"{len(joined)} region(s): no replica in a second "
                                                                  "region")  # fmt: skip


def _failover_pairs(tree: TfTree, placed: list[_Placed]) -> Iterator[tuple[str, str, str]]:
    kinds: set[str] = set()
    first: _Placed | None = None
    for x in placed:
        if x.block.type != "aws_route53_record" or not (policy := _first(x.block.body.get("failover_routing_policy"))):
            continue
        first = first or x
        kinds |= _failover_types(x, policy.get("type"))
        if not x.block.body.get("health_check_id"):
            yield x.block.address, x.block.file, "a failover record without a health_check_id never fails over"
    if first and not {"PRIMARY", "SECONDARY"} <= kinds:
        yield first.block.address, first.block.file, (f"failover records of type(s) {sorted(kinds) or '?'}: a "
                                                      "PRIMARY needs a SECONDARY in the other region")  # fmt: skip


def _failover_types(x: _Placed, value: Any) -> set[str]:
    """PRIMARY/SECONDARY, also when they come from the record's ``for_each`` (``each.value``, ``each.key``)."""
    expr = _expr(value)
    if expr is None:
        return {str(value)}
    for_each = x.block.body.get("for_each")
    local = re.fullmatch(r"local\.(\w+)", _expr(for_each) or "")
    items = x.module.locals.get(local.group(1)) if local else for_each
    if isinstance(items, dict) and expr in ("each.value", "each.key"):
        return {str(v) for v in (items.values() if expr == "each.value" else items.keys())}
    if isinstance(items, list) and expr in ("each.value", "each.key"):
        return {str(v) for v in items}
    return set()


def _template(value: Any) -> re.Pattern[str] | None:
    """A name template as a pattern: each interpolation matches any text."""
    if not isinstance(value, str):
        return None
    parts, i = [], 0
    while (start := value.find("${", i)) >= 0:
        depth, end = 0, start + 2
        while end < len(value) and not (value[end] == "}" and depth == 0):
            depth += {"{": 1, "}": -1}.get(value[end], 0)
            end += 1
        parts += [re.escape(value[i:start]), ".+"]
        i = end + 1
    parts.append(re.escape(value[i:]))
    return re.compile("".join(parts))


def _alarms(tree: TfTree, names: Sequence[str]) -> Iterator[tuple[str, str, str]]:
    defined = [(b, p) for m in tree.modules.values() for t in ALARM_RESOURCES for b in m.of("resource", t)
               if (p := _template(b.body.get("alarm_name")))]  # fmt: skip
    for name in names:
        if not any(p.fullmatch(name) for _, p in defined):
            known = ", ".join(sorted({str(b.body.get("alarm_name")) for b, _ in defined})) or "none"
            kinds = " or ".join(ALARM_RESOURCES)
            yield f"alarm {name}", tree.path.as_posix(), (f"named as a stop condition but no {kinds} makes it "
                                                          f"(alarm names here: {known})")  # fmt: skip


def _outputs(tree: TfTree, names: Sequence[str]) -> Iterator[tuple[str, str, str]]:
    for root in tree.roots():
        have = {b.name for b in root.of("output") if b.body.get("value") is not None}
        for name in REQUIRED_OUTPUTS:
            if name not in have:
                yield f"output.{name}", f"{root.display}/", "missing: drillbit's targets read it from its outputs"


def inline_skips(tree: TfTree) -> Iterator[tuple[str, int, str, str]]:
    """Every ``#checkov:skip=ID:reason`` in the tree's files: (file, line, check id, reason)."""
    for module in tree.modules.values():
        for path in sorted(module.path.glob("*.tf")):
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if m := _SKIP.search(line):
                    yield _display(path), n, m.group(1), (m.group(2) or "").strip()


def _baseline_entries(tree: TfTree) -> Iterator[tuple[str, str, list[str], str]]:
    """The tree's checkov baseline: (file, resource, check ids, reason)."""
    path = tree.path / BASELINE_NAME
    if not path.is_file():
        return
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(_display(path), f"is not a checkov baseline: {err}") from None
    for entry in data.get("failed_checks") or []:
        for f in entry.get("findings") or []:
            yield str(entry.get("file")), str(f.get("resource")), list(f.get("check_ids") or []), \
                str(f.get("reason") or "").strip()  # fmt: skip


def _skip_reasons(tree: TfTree, names: Sequence[str]) -> Iterator[tuple[str, str, str]]:
    for file, line, check, reason in inline_skips(tree):
        if not reason:
            yield check, f"{file}:{line}", f"#checkov:skip={check} without a reason: write #checkov:skip={check}:why"
    for file, resource, checks, reason in _baseline_entries(tree):
        if not reason:
            yield resource, _display(tree.path / BASELINE_NAME), (f"baseline entry ({file}: {', '.join(checks)}) "
                                                                  "without a \"reason\"")  # fmt: skip


RULES: tuple[TfRule, ...] = (
    TfRule("DRILL-TF-001", "R1.5", "multi-AZ: subnets, NAT, node groups, control plane, database, load balancers",
           "iterate per AZ over a variable validated to length >= 2, or list >= 2 subnets", _multi_az),
    TfRule("DRILL-TF-002", "R9.1", "automated backups (point-in-time recovery) kept >= 7 days",
           "backup_retention_period >= 7, or a variable validated to >= 7", _retention),
    TfRule("DRILL-TF-003", "R13.1", "a second region: providers, VPCs, clusters, a global database, DNS failover",
           "a second aws provider configuration in another region, and the modules instantiated in it", _second_region),
    TfRule("DRILL-TF-004", "R14.2", "every alarm named as a stop condition exists",
           "add the aws_cloudwatch_metric_alarm, or name an alarm the alarms module makes", _alarms),
    TfRule("DRILL-TF-005", "R9.5", "a root module has every output drillbit's targets read",
           f"add the outputs: {', '.join(REQUIRED_OUTPUTS)}", _outputs),
    TfRule("DRILL-TF-006", "R12.1", "every skipped checkov check carries a reason",
           "#checkov:skip=CKV_...:why inline; a \"reason\" on each baseline entry", _skip_reasons),
)  # fmt: skip


def run_rules(tree: TfTree, alarm_names: Sequence[str] = ()) -> list[Finding]:
    """drillbit's rules over a loaded tree; ``alarm_names``: the alarms experiments name (DRILL-TF-004)."""
    return [Finding(rule.id, rule.requirement, rule.severity, obj, file, f"{problem} (fix: {rule.fix})")
            for rule in RULES for obj, file, problem in rule.check(tree, alarm_names)]  # fmt: skip


# --- terraform fmt and checkov -----------------------------------------------------------------------


def run_fmt(path: Path, terraform: str | None = None) -> list[Finding]:
    """``terraform fmt -check -recursive``: one finding per file it would rewrite."""
    program = terraform or os.environ.get(TERRAFORM_ENV) or shutil.which("terraform")
    if program is None:
        return [Finding("TF-FMT", "R2.1", "error", "-", _display(path), "terraform is not installed, so fmt did not "
                        f"run: install terraform or set ${TERRAFORM_ENV} (or pass --no-fmt)",
                        source="terraform")]  # fmt: skip
    try:
        done = subprocess.run([program, "fmt", "-check", "-recursive", "-list=true", str(path)], capture_output=True,
                              text=True, timeout=TIMEOUT_S)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ConfigError(TERRAFORM_ENV, f"terraform ({program}) did not run: {err}") from None
    if done.returncode == 0:
        return []
    files = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    if not files:  # not a formatting difference: a file it cannot parse
        return [Finding("TF-FMT", "R2.1", "error", "-", _display(path), "terraform fmt failed: "
                        + " ".join(done.stderr.split())[:400], source="terraform")]  # fmt: skip
    return [Finding("TF-FMT", "R2.1", "error", Path(f).name, _display(Path(f)), "not formatted: run terraform fmt",
                    source="terraform") for f in files]  # fmt: skip


def run_checkov(tree: TfTree, checkov: str) -> tuple[list[Finding], int, str]:
    """checkov's Terraform checks over the tree, offline: (findings, passed, version). A failed check is
    an error unless the tree's baseline (``.checkov.baseline``, checkov's own format, matched as checkov
    matches it: resource and check id) holds it; a suppression, inline or in the baseline, is info with
    its reason; a baseline entry that matches nothing is a warning (stale). checkov is run without
    ``--baseline`` and the baseline applied here, since under ``--baseline`` checkov reports no passed
    checks and no resource count, and a scan that read nothing must not pass as clean."""
    root = tree.path.resolve()
    cmd = [checkov, "-d", str(root), "--framework", "terraform", "-o", "json", "--compact", "--skip-download"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, env=_offline_env(), cwd=root)
        out = json.loads(done.stdout) if done.stdout.strip() else None
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ConfigError("checkov", f"checkov ({checkov}) did not run: {err}; fix it or pass --no-checkov") from None
    except json.JSONDecodeError:
        out = None
    if not isinstance(out, (dict, list)):
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        raise ConfigError("checkov", f"checkov ({checkov}) printed no JSON report: {last}")
    baseline = {(resource, check): (file, reason) for file, resource, checks, reason in _baseline_entries(tree)
                for check in checks}  # fmt: skip
    used: set[tuple[str, str]] = set()
    findings, passed, resources, version = [], 0, 0, ""
    for report in out if isinstance(out, list) else [out]:
        summary = report.get("summary") or report
        passed += int(summary.get("passed") or 0)
        resources += int(summary.get("resource_count") or 0)
        version = str(summary.get("checkov_version") or version)
        if errors := int(summary.get("parsing_errors") or 0):
            findings.append(Finding("CHECKOV", "R12.1", "error", "-", _display(root),
                                    f"checkov could not parse {errors} file(s)", source="checkov"))  # fmt: skip
        results = report.get("results") or {}
        for c in results.get("failed_checks") or []:
            key = (str(c.get("resource")), str(c.get("check_id")))
            where = f"{_display(root / str(c.get('file_path')).lstrip('/'))}:{(c.get('file_line_range') or [1])[0]}"
            if key in baseline:
                used.add(key)
                why = f"in the baseline: {baseline[key][1] or 'no reason'} ({c.get('check_name')})"
                findings.append(Finding(key[1], "R12.1", "info", key[0], where, why, source="checkov"))
            else:
                findings.append(Finding(key[1], "R12.1", "error", key[0], where, str(c.get("check_name")),
                                        source="checkov"))  # fmt: skip
        for c in results.get("skipped_checks") or []:
            where = f"{_display(root / str(c.get('file_path')).lstrip('/'))}:{(c.get('file_line_range') or [1])[0]}"
            why = (c.get("check_result") or {}).get("suppress_comment") or "no reason"
            findings.append(Finding(str(c.get("check_id")), "R12.1", "info", str(c.get("resource")), where,
                                    f"suppressed inline: {why} ({c.get('check_name')})", source="checkov"))  # fmt: skip
    if resources == 0:
        findings.append(Finding("CHECKOV", "R12.1", "error", "-", _display(root), "checkov found no resource to "
                                "check: a scan that read nothing is not clean", source="checkov"))  # fmt: skip
    for (resource, check), (file, _) in sorted(baseline.items()):
        if (resource, check) not in used:
            findings.append(Finding(check, "R12.1", "warning", resource, _display(root / BASELINE_NAME),
                                    f"a baseline entry ({file}) that no failed check matches: remove it",
                                    source="checkov"))  # fmt: skip
    return findings, passed, version


# --- all of it -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TerraformCheck:
    path: str
    findings: list[Finding]
    checkov: str | None  # the version that ran; None when it did not
    passed: dict[str, int]  # source -> checks that passed
    seconds: dict[str, float]  # fmt, checkov, rules -> wall time

    @property
    def exit_code(self) -> int:
        return 1 if any(f.severity == "error" for f in self.findings) else 0


def check_terraform(path: Path | str, *, alarm_names: Sequence[str] = (), fmt: bool = True, checkov: bool = True,
                    project_root: Path | None = None) -> TerraformCheck:  # fmt: skip
    """fmt, checkov and drillbit's rules over the Terraform tree at ``path`` (see the module docstring).
    A check that cannot run (no terraform, no checkov) is an error finding unless turned off."""
    root = Path(path)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    tree = load_tree(root)
    findings = run_rules(tree, alarm_names)
    seconds["rules"] = time.perf_counter() - t0
    passed = {"drillbit": len(RULES) - len({f.rule for f in findings})}
    if fmt:
        t0 = time.perf_counter()
        findings += run_fmt(root)
        seconds["fmt"] = time.perf_counter() - t0
    version = None
    if checkov:
        t0 = time.perf_counter()
        program = find_checkov(project_root)
        if program is None:
            findings.append(Finding("CHECKOV", "R12.1", "error", "-", _display(root), "checkov is not installed, so "
                                    "its checks did not run: make lint installs it into .tools/checkov (or set "
                                    "$DRILL_CHECKOV), or pass --no-checkov", source="checkov"))  # fmt: skip
        else:
            more, passed["checkov"], version = run_checkov(tree, program)
            findings += more
        seconds["checkov"] = time.perf_counter() - t0
    order = {"error": 0, "warning": 1, "info": 2}
    findings.sort(key=lambda f: (order.get(f.severity, 3), f.source, f.rule, f.file))
    return TerraformCheck(_display(root), findings, version, passed, seconds)


def _print(result: TerraformCheck, out: Any) -> None:
    for f in result.findings:
        print(f"{f.severity:7} {f.rule:13} {f.requirement:6} {f.object}  {f.file}\n        {f.message}", file=out)
    counts = {s: sum(f.severity == s for f in result.findings) for s in ("error", "warning", "info")}
    took = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
    print(f"terraform check {result.path}: {counts['error']} error(s), {counts['info']} suppressed; passed "
          f"{result.passed}; checkov {result.checkov or 'not run'}; {took}", file=out)  # fmt: skip


def main(argv: Iterable[str] | None = None) -> int:
    about = "terraform fmt, checkov and drillbit's rules over a Terraform tree"
    parser = argparse.ArgumentParser(prog="python -m drillbit.manifests.terraform", description=about)
    parser.add_argument("path", nargs="?", default="infra/terraform", help="the Terraform tree (default: %(default)s)")
    parser.add_argument("--alarm", action="append", default=[], metavar="NAME",
                        help="an alarm experiments name as a stop condition: it must exist (repeatable)")  # fmt: skip
    parser.add_argument("--no-fmt", action="store_true", help="skip terraform fmt -check")
    parser.add_argument("--no-checkov", action="store_true", help="skip checkov")
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        result = check_terraform(args.path, alarm_names=args.alarm, fmt=not args.no_fmt, checkov=not args.no_checkov)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    _print(result, sys.stdout)
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
