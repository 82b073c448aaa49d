"""API errors said the way a user can act on them: the verb, the resource, and what to do."""

from __future__ import annotations

import re

from ciao.backend.kubeflow.client import ApiError
from ciao.errors import BackendError

#: What to do about a TrainJob whose runtime does not exist.
RUNTIME_HINT = (
    "name an installed runtime with %runtime=NAME or kubeflow.runtime; "
    "kubectl get clustertrainingruntimes lists them"
)


def _webhook(message: str, group: str) -> str:
    """Whose webhook refused: its name says (Kueue's and JobSet's act on these groups too)."""
    named = re.search(r'admission webhook "([^"]+)"', message)
    name = named.group(1) if named else ""
    if "katib.kubeflow.org" in name:
        return "Katib's webhook"
    if "trainer.kubeflow.org" in name or (not name and group == "trainer.kubeflow.org"):
        return "Kubeflow Trainer's webhook"
    if "training-operator" in name or (not name and group == "kubeflow.org"):
        return "the training operator's webhook"
    return f'the admission webhook "{name}"' if name else "an admission webhook"


def explain(
    error: ApiError, verb: str, resource: str, namespace: str, group: str = "", kind: str = ""
) -> BackendError:
    """A BackendError naming the verb and resource (e.g. `create pytorchjobs.kubeflow.org`).

    403 says which RBAC rule would allow the call; 404 on a job resource says the training
    operator is missing; a webhook's or validation's rejection is shown verbatim.
    """
    full = f"{resource}.{group}" if group else resource
    where = f" in namespace {namespace}" if namespace else ""
    status, message = error.status, str(error)
    if "admission webhook" in message:  # 403 from controller-runtime's Denied(), or 400/422
        text = f"{verb} {full}: {_webhook(message, group)} rejected the job: {message}"
        if "trainingruntime" in message.lower():  # the runtime named does not exist
            text += f" ({RUNTIME_HINT})"
    elif status == 401:
        text = (
            f"{verb} {full}{where}: the API server refused the credentials (401 Unauthorized); "
            "the kubeconfig's token or certificate is missing or expired"
        )
    elif status == 403:
        text = (
            f"{verb} {full}{where} is forbidden: {message}\n"
            f"A Role in namespace {namespace or '<namespace>'} with this rule would allow it "
            "(deploy/rbac.yaml has the full set Ciao needs):\n"
            f'  - apiGroups: ["{group}"]\n    resources: ["{resource}"]\n    verbs: ["{verb}"]'
        )
    elif status == 404 and _namespace_missing(error, namespace):
        text = f"{verb} {full}: namespace {namespace!r} does not exist ({message})"
    elif status == 404 and group == "kubeflow.org" and not _names_an_object(error):
        text = (
            f"{verb} {full}: this cluster does not serve {kind or resource} ({full}/v1): "
            "the Kubeflow training operator is not installed (or is too old). Install it, e.g. "
            '`kubectl apply --server-side -k "github.com/kubeflow/training-operator.git/'
            'manifests/overlays/standalone?ref=v1.9.2"`'
        )
    elif status in (400, 422):
        text = f"{verb} {full}: the API server rejected the manifest: {message}"
    elif status == 0:
        text = f"{verb} {full}: {message}"
    else:
        text = f"{verb} {full}{where}: {status} {error.reason or ''} {message}".replace("  ", " ")
    return BackendError(text)


def _namespace_missing(error: ApiError, namespace: str) -> bool:
    body = error.body if isinstance(error.body, dict) else {}
    details = body.get("details") or {}
    return details.get("kind") == "namespaces" or f'namespaces "{namespace}" not found' in str(
        error
    )


def _names_an_object(error: ApiError) -> bool:
    """A 404 about one object (its name in details), not about the resource itself."""
    body = error.body if isinstance(error.body, dict) else {}
    return bool((body.get("details") or {}).get("name"))
