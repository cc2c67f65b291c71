"""Packaging: Boutiques descriptor, Dockerfile, docker smoke script, Slurm examples (static checks).

The image itself is built and run by .ci/docker_smoke.sh (not from pytest: it needs a Docker
engine and several minutes).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import bids_amyloid
from bids_amyloid.cli import ExecSpecAction, build_parser, config_from_args, main
from bids_amyloid.errors import EXIT_CODES

REPO = Path(__file__).resolve().parents[1]
DESCRIPTOR = REPO / "boutiques.json"
PACKAGED = REPO / "bids_amyloid" / "data" / "boutiques.json"
DOCKERFILE = REPO / "Dockerfile"


def _tool(name: str) -> str:
    """A console script of the test environment (its bin folder may not be on PATH)."""
    path = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(path).exists():
        pytest.fail(f"{name} is not installed: pip install -e '.[test]'")
    return path


def _option_strings() -> set[str]:
    return {s for a in build_parser()._actions for s in a.option_strings} - {"-h", "--help"}


# ---------------------------------------------------------------------------------------------
# Boutiques


def test_descriptor_copies_identical():
    assert DESCRIPTOR.read_text() == PACKAGED.read_text(), (
        "boutiques.json and bids_amyloid/data/boutiques.json differ: run python .ci/make_boutiques.py")


def test_descriptor_up_to_date_with_parser():
    res = subprocess.run([sys.executable, str(REPO / ".ci" / "make_boutiques.py"), "--check"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_descriptor_names_every_option():
    text = DESCRIPTOR.read_text()
    missing = sorted(s for s in _option_strings() if not re.search(re.escape(s) + r"(?![\w-])", text))
    assert not missing, f"options of build_parser() missing from boutiques.json: {missing}"


def test_descriptor_inputs_match_parser():
    desc = json.loads(DESCRIPTOR.read_text())
    assert desc["schema-version"] == "0.5"
    assert desc["tool-version"] == bids_amyloid.__version__
    assert desc["container-image"] == {"type": "docker", "image": f"bids_amyloid:{bids_amyloid.__version__}"}
    by_id = {i["id"]: i for i in desc["inputs"]}
    for action in build_parser()._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction, ExecSpecAction)):
            continue  # print and exit: not inputs of a run
        item = by_id[action.dest]
        assert item["value-key"] in desc["command-line"]
        if action.option_strings:
            assert item["command-line-flag"] in action.option_strings
        if action.choices:
            assert item["value-choices"] == list(action.choices)
        if action.nargs == "+":
            assert item.get("list") is True
    assert by_id["analysis_level"]["value-choices"] == ["participant", "group"]
    assert {e["code"]: e["description"] for e in desc["error-codes"]} == {
        c: t for c, t in EXIT_CODES.items() if c != 0}
    assert desc["tests"], "the descriptor needs a tests entry"


def test_bosh_validate():
    res = subprocess.run([_tool("bosh"), "validate", str(DESCRIPTOR)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_bosh_simulate_builds_the_cli_command(tmp_path):
    """bosh renders the descriptor's test invocation; the command parses with build_parser()."""
    desc = json.loads(DESCRIPTOR.read_text())
    invocation = tmp_path / "invocation.json"
    invocation.write_text(json.dumps(desc["tests"][0]["invocation"]))
    res = subprocess.run([_tool("bosh"), "exec", "simulate", str(DESCRIPTOR), "-i", str(invocation)],
                         capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("bids_amyloid ")][-1]
    args = config_from_args(build_parser().parse_args(line.split()[1:]))
    assert args.analysis_level == "participant" and args.sloppy


def test_bids_exec_spec_serves_the_descriptor():
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as info:
        main(["--bids-exec-spec"])  # like --version: print and exit 0
    assert info.value.code == 0
    assert out.getvalue() == PACKAGED.read_text()


# ---------------------------------------------------------------------------------------------
# Dockerfile


def _stages(text: str) -> list[str]:
    return re.split(r"(?m)^FROM ", text)[1:]


def test_hadolint_clean():
    res = subprocess.run([_tool("hadolint"), str(DOCKERFILE)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_dockerfile_contract():
    text = DOCKERFILE.read_text()
    assert re.search(r"(?m)^ARG VERSION=(\S+)$", text).group(1) == bids_amyloid.__version__, (
        "Dockerfile ARG VERSION must equal bids_amyloid.__version__")
    assert re.search(r"(?m)^ARG FETCH_WEIGHTS=1$", text)
    assert "bids_amyloid fetch-weights /opt/bids_amyloid/weights/biomedclip" in text
    assert all(s.startswith("debian:bookworm-slim") or s.startswith("deps ") for s in _stages(text))
    final = _stages(text)[-1]
    for needed in ('ENTRYPOINT ["bids_amyloid"]', "HF_HUB_OFFLINE=1", "MPLCONFIGDIR=/tmp",
                   "BIDS_AMYLOID_CONTAINER_TYPE=docker", "BIDS_AMYLOID_CONTAINER_TAG=bids_amyloid:${VERSION}",
                   "org.opencontainers.image.version", "org.opencontainers.image.source",
                   "org.opencontainers.image.licenses", "mricron-data", "PIP_NO_CACHE_DIR=1"):
        assert needed in final, needed
    user = re.findall(r"(?m)^USER (\S+)$", final)
    assert user and user[-1].split(":")[0] not in ("0", "root")
    # the build CA reaches only the throw-away stages
    for secret in ("ci-ca.crt", "PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        assert secret not in final, f"{secret} appears in the final stage"


def test_dockerignore_is_a_whitelist():
    lines = [ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*"
    assert {"!pyproject.toml", "!bids_amyloid/", "!ci-ca.crt"} <= set(lines)


# ---------------------------------------------------------------------------------------------
# scripts


@pytest.mark.parametrize("script", [".ci/docker_smoke.sh", ".ci/hpc_smoke.sh", ".ci/lib.sh", ".ci/hpc/start_cluster.sh",
                                    "scripts/test.sh", *sorted(
    str(p.relative_to(REPO)) for p in (REPO / "examples" / "slurm").glob("*.sbatch"))])
def test_shell_scripts_parse(script):
    res = subprocess.run(["bash", "-n", str(REPO / script)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_docker_smoke_options():
    text = (REPO / ".ci" / "docker_smoke.sh").read_text()
    for needed in ("--update-expected", "SMOKE_SKIP_BUILD", "--read-only", "expected_outputs.txt",
                   "bids-validator-deno", "FETCH_WEIGHTS=0"):
        assert needed in text, needed


def test_hpc_smoke_runs_every_recipe_for_real():
    """The HPC smoke test submits the repository's own job scripts and checks what Slurm recorded."""
    text = (REPO / ".ci" / "hpc_smoke.sh").read_text()
    for script in sorted((REPO / "examples" / "slurm").glob("*.sbatch")):
        assert f'"$slurm/{script.name}"' in text, script.name
    for needed in ("apptainer -s build", "docker-archive://", "--cleanenv --containall", "scancel", "sacct",
                   "check_outputs", "srun", "--dependency=", "bids-validator-deno"):
        assert needed in text, needed
    assert "hpc_smoke.sh" in (REPO / "scripts" / "test.sh").read_text()


def test_smoke_threshold_gives_four_subjects_per_class():
    import importlib.util

    spec = importlib.util.spec_from_file_location("smoke_threshold", REPO / ".ci" / "smoke_threshold.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    balanced = [60, 50, 40, 30, 10, 5, 0, -5]
    assert mod.choose(balanced, 4, 20.6) == 20.6  # the app's default already splits 4/4
    skewed = [125, 64, 12, 8, 3, -3, -6, -14]
    t = mod.choose(skewed, 4, 20.6)
    assert sum(v > t for v in skewed) == 4 and sum(v <= t for v in skewed) == 4
    with pytest.raises(ValueError):
        mod.choose(skewed[:6], 4, 20.6)


def test_example_script_uses_only_existing_options():
    """scripts/example.sh (the README's first command) must not drift from the CLIs it calls."""
    import re

    from bids_amyloid.cli import build_parser
    from bids_amyloid.report.summary import build_parser as summary_parser
    from bids_amyloid.synth.cli import build_parser as synth_parser

    parsers = (build_parser(), synth_parser(), summary_parser())
    known = {s for p in parsers for a in p._actions for s in a.option_strings} | {"--tiny"}  # fetch-weights
    script = (REPO / "scripts" / "example.sh").read_text()
    used = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]+)", script))
    assert used and used <= known, sorted(used - known)
