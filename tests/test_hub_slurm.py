"""scripts/slurm: the torchrun command each node runs, and job chaining (Slurm stubbed)."""

import os
import stat
import subprocess
from pathlib import Path

import pytest

SLURM = Path(__file__).resolve().parents[1] / "scripts" / "slurm"


def stub(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/bash\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def cluster(tmp_path):
    """Two nodes of four GPUs: scontrol, nvidia-smi and srun replaced by stubs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub(bin_dir, "scontrol", 'echo node7; echo node8')
    stub(bin_dir, "nvidia-smi", 'for i in 0 1 2 3; do echo "GPU $i: H100"; done')
    stub(bin_dir, "srun", 'echo "OMP=$OMP_NUM_THREADS $*" > "$SRUN_LOG"')
    stub(bin_dir, "sbatch", 'n=$(( $(cat "$SBATCH_COUNT" 2>/dev/null || echo 100) + 1 )); '
                            'echo $n > "$SBATCH_COUNT"; echo "$*" >> "$SBATCH_LOG"; echo $n')
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_NNODES": "2",
           "SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "node[7-8]",
           "SLURM_CPUS_PER_TASK": "32",
           "SRUN_LOG": str(tmp_path / "srun.log"), "SBATCH_LOG": str(tmp_path / "sbatch.log"),
           "SBATCH_COUNT": str(tmp_path / "count")}
    env.pop("SLURM_GPUS_ON_NODE", None)
    env.pop("DSLM_NO_RESUME", None)
    return tmp_path, env


def sbatch_script(cluster, *args, **env):
    tmp, base = cluster
    return subprocess.run(["bash", str(SLURM / "dslm.sbatch"), *args], cwd=tmp,
                          env={**base, **env}, capture_output=True, text=True, timeout=30)


def test_train_runs_torchrun_on_every_node_and_resumes(cluster):
    done = sbatch_script(cluster, "train", "--config", "configs/owt-small-mdlm.yaml",
                         "train.steps=5")
    assert done.returncode == 0, done.stderr
    line = (cluster[0] / "srun.log").read_text().split()
    assert line[0] == "OMP=8"                                   # 32 CPUs / 4 GPUs
    assert line[line.index("torchrun") + 1:] == [
        "--nnodes=2", "--nproc-per-node=4", "--rdzv-id=4242", "--rdzv-backend=c10d",
        "--rdzv-endpoint=node7:29500", "-m", "dslm", "train", "--config",
        "configs/owt-small-mdlm.yaml", "train.steps=5", "--resume"]


def test_sweep_gets_no_resume_and_resume_can_be_switched_off(cluster):
    assert sbatch_script(cluster, "sweep", "--protocol", "owt", "--out", "r").returncode == 0
    assert (cluster[0] / "srun.log").read_text().split()[-7:] == [
        "-m", "dslm", "sweep", "--protocol", "owt", "--out", "r"]
    assert sbatch_script(cluster, "finetune", "--from", "m", DSLM_NO_RESUME="1").returncode == 0
    assert "--resume" not in (cluster[0] / "srun.log").read_text()
    assert sbatch_script(cluster, "finetune", "--from", "m", "--resume").returncode == 0
    assert (cluster[0] / "srun.log").read_text().count("--resume") == 1


def test_unknown_command_is_refused(cluster):
    done = sbatch_script(cluster, "export", "--ckpt", "x")
    assert done.returncode == 2 and "usage:" in done.stderr
    assert not (cluster[0] / "srun.log").exists()


def test_chain_submits_jobs_that_wait_for_each_other(cluster):
    tmp, env = cluster
    done = subprocess.run(["bash", str(SLURM / "chain.sh"), "3", "--nodes=2", "--",
                           "train", "--config", "c.yaml"], cwd=tmp, env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    calls = (tmp / "sbatch.log").read_text().splitlines()
    script = str(SLURM / "dslm.sbatch")
    dslm_args = f"{script} train --config c.yaml"
    assert calls == [f"--parsable --nodes=2 {dslm_args}",
                     f"--parsable --nodes=2 --dependency=afterany:101 {dslm_args}",
                     f"--parsable --nodes=2 --dependency=afterany:102 {dslm_args}"]
    missing = subprocess.run(["bash", str(SLURM / "chain.sh"), "2", "train"], cwd=tmp, env=env,
                             capture_output=True, text=True, timeout=30)
    assert missing.returncode == 2 and "missing --" in missing.stderr
