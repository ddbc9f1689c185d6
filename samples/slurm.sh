#!/bin/bash
# reenact on a SLURM cluster: one torchrun launcher per node, each starting one process per GPU; the
# launchers meet at a c10d rendezvous on the first node. The workspace must be on a filesystem every
# node sees (it is the artifact store: parts, locks, checkpoints). Submit with: sbatch samples/slurm.sh
#SBATCH --job-name=reenact
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=64
#SBATCH --time=04:00:00

set -euo pipefail
WORKDIR=/shared/reenact-work            # shared by all nodes
HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)

srun torchrun \
    --nnodes="$SLURM_JOB_NUM_NODES" \
    --nproc_per_node=8 \
    --rdzv_backend=c10d \
    --rdzv_endpoint="$HEAD:29500" \
    --rdzv_id="$SLURM_JOB_ID" \
    --max-restarts=3 \
    -m reenact_cli transfer /shared/in/target.mp4 /shared/in/driver.mp4 \
        -o /shared/out/result.mp4 --workdir "$WORKDIR"
# Many jobs instead: ... -m reenact_cli batch /shared/jobs.toml --workdir "$WORKDIR"
