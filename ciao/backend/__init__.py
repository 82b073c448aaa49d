"""Phase 3: run a Parameter as a job (local processes, or Kubeflow on Kubernetes)."""
