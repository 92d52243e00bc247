"""envs/fau.yaml (the conda env of every rule) pins the same versions as
requirements.txt, and every rule names an environment that exists."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines):
    out = {}
    for line in lines:
        line = line.split("#")[0].strip()
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if m:
            out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def test_conda_envs_pin_the_requirements_versions():
    req = _pins((ROOT / "requirements.txt").read_text().splitlines())
    envs = sorted((ROOT / "envs").glob("*.yaml"))
    assert [e.stem for e in envs] == ["fau"]
    for env in envs:
        spec = yaml.safe_load(env.read_text())
        deps = spec["dependencies"]
        assert any(str(d).startswith("python=3.11") for d in deps if isinstance(d, str)), env
        pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
        pins = _pins(pip)
        assert pins, f"{env.name}: no pinned pip packages"
        runtime = {n for n in req if n not in ("snakemake", "snakemake-executor-plugin-slurm", "dvc", "pytest",
                                               "pytest-timeout", "selenium")}
        assert runtime <= set(pins), f"{env.name}: missing {sorted(runtime - set(pins))}"
        for name, version in pins.items():
            assert name in req, f"{env.name}: {name} is not in requirements.txt"
            assert req[name] == version, f"{env.name}: {name}=={version}, requirements.txt has {req[name]}"
        assert "-e .." in pip, f"{env.name}: must install the fau package itself"


def test_every_rule_uses_an_existing_env():
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        for rel in re.findall(r'conda:\s*\n\s*"([^"]+)"', smk.read_text()):
            assert (smk.parent / rel).resolve().is_file(), f"{smk.name}: {rel} does not exist"
