"""The image providers: the cell's code (and requirements) built into an image and pushed.

- `s2i`: the code as `code.py` and `requirements.txt` (plus `.s2i/environment` with
  `APP_FILE=code.py`, which Python builders of the sclorg family read) in a fresh directory,
  `s2i build <dir> <builder image> <image>`, then `<push command> <image>`. The builder's
  run script runs the code, so the job needs no container command.
- `img` (the original's name for a Dockerfile build): `FROM <%image or images.framework>`, the
  requirements pip-installed in a layer, `ENTRYPOINT ["python", "-u", "/opt/ciao/code.py"]`,
  built with `<build command> -t <image> <dir>` (docker, podman, buildah bud and img share
  that form) and pushed the same way.

The image is `<s2i.registry>/<s2i.repository>:<tag>`, the tag a hash of everything that
goes into it (provider, base or builder image, code, requirements). One repository for all
cells: registries that do not create repositories on push (ECR, Harbor projects) need it
created once, and no cell's code lands in a new, perhaps public, repository.

An unchanged cell skips the build and the push: every image pushed is remembered in
`~/.ciao/s2i-pushed` (one reference a line). The tag is a content hash and the reference
names the registry, so a line can only mean "this very content is in this very repository".
Asking the container tool instead was rejected: whether an image exists locally says nothing
about the registry, and the registry-side checks differ per tool (`docker manifest inspect`,
`skopeo inspect`) and need the network and the login each time. If an image was deleted from
the registry since, the pod's ImagePullBackOff is diagnosed in the cell; deleting its line
(or the file) forces a rebuild.

Credentials: none is ever read, passed or printed by Ciao. The tools use their own login
store (`docker login`, `podman login`, DOCKER_CONFIG, REGISTRY_AUTH_FILE), and the config
refuses credential options in the commands.
"""

from __future__ import annotations

import abc
import hashlib
import json
import os
import re
import shlex
import tempfile
from collections.abc import Mapping
from pathlib import Path

from ciao.config import S2IConfig
from ciao.constants import CODE_DIR, CODE_FILE, REQUIREMENTS_FILE
from ciao.errors import ConfigError
from ciao.interpreter.types import Parameter
from ciao.s2i.bundle import Bundle, bundle_of
from ciao.s2i.image import cell_image, refuse_image
from ciao.s2i.requirements import requirements_text
from ciao.s2i.tools import BuildError, ToolResult, ToolRunner
from ciao.s2i.types import LineCallback, Shipment
from ciao.secrets import redact

#: Bumped when what goes into an image changes for the same cell (the files, the recipe).
RECIPE_VERSION = 1
#: Where the img provider's Dockerfile puts the code (as the configmap provider mounts it).
IMAGE_CODE_DIR = CODE_DIR

#: How to install each tool, for the error when it is not on PATH.
INSTALL_HINTS = {
    "s2i": "install source-to-image: put the `s2i` binary from "
    "https://github.com/openshift/source-to-image/releases on the kernel's PATH",
    "docker": "install Docker (https://docs.docker.com/engine/install/) "
    "or use another tool, e.g. s2i.push_command: [podman, push]",
    "podman": "install Podman (https://podman.io/docs/installation)",
    "buildah": "install Buildah (https://buildah.io)",
    "img": "install img (https://github.com/genuinetools/img)",
}
#: How registries say a repository is missing (ECR, Harbor, distribution, GCR...).
_MISSING_REPOSITORY = re.compile(
    r"name unknown|name_unknown|repository (with name )?\S* ?(does not exist|not found)"
    r"|does not exist in the registry|project \S+ not found|repository not found"
    r"|404 not found",
    re.IGNORECASE,
)
#: ... and that the push is not allowed (Docker Hub, GitLab, Quay, GHCR...).
_AUTH = re.compile(
    r"unauthori[sz]ed|authentication required|requested access to the resource is denied"
    r"|access denied|denied:|no basic auth credentials|not logged in|insufficient_scope"
    r"|\b401\b|\b403\b|forbidden|authorization failed",
    re.IGNORECASE,
)
_UNREACHABLE = re.compile(
    r"no such host|connection refused|i/o timeout|network is unreachable|dial tcp"
    r"|tls: |x509:|server gave http response to https client",
    re.IGNORECASE,
)


class PushedImages:
    """The image references this user has built and pushed: one a line, appended."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else Path.home() / ".ciao" / "s2i-pushed"

    def __contains__(self, image: str) -> bool:
        try:
            with open(self.path, encoding="utf-8") as lines:
                return any(line.rstrip("\n") == image for line in lines)
        except OSError:
            return False

    def add(self, image: str) -> None:
        """Remember `image`; one short O_APPEND write, so kernels sharing a home do not
        interleave. A cache that cannot be written only costs a rebuild next time."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, f"{image}\n".encode())
            finally:
                os.close(fd)
        except OSError:
            pass


class ImageBuild(abc.ABC):
    """What the s2i and img providers share: the source directory, the content tag, the
    skip when pushed before, the build, the push, their errors, and cancel()."""

    #: `s2i.provider` value, and the first word of the build's progress lines.
    provider = ""
    #: Where the code (and what travels with it) is in the built image.
    code_dir = ""

    def __init__(
        self,
        config: S2IConfig,
        images: Mapping[str, str],
        pushed: PushedImages | None = None,
        env: Mapping[str, str] | None = None,
        source: Path | None = None,
        kill_grace: float = 3.0,
    ) -> None:
        where = str(source) if source else "config"
        if not config.registry:
            raise ConfigError(
                f"{where}: s2i.registry is empty: s2i.provider {self.provider} pushes the "
                "image of every cell there, e.g. `s2i: {registry: registry.example.com/team}` "
                "(or use `s2i: {provider: configmap}`, which needs no registry)"
            )
        if "://" in config.registry:
            raise ConfigError(
                f"{where}: s2i.registry: {config.registry!r}: give it without the scheme, "
                "like registry.example.com/team"
            )
        named = [("images", images), ("s2i.builders", config.builders)]
        for key, section in named:
            for framework, image in section.items():
                if not re.fullmatch(r"[^\s\"'\\]+", image):
                    raise ConfigError(f"{where}: {key}.{framework}: {image!r} is not an image")
        self.config = config
        self.images = dict(images)
        self.pushed = pushed if pushed is not None else PushedImages()
        self.runner = ToolRunner(config.timeout, env, kill_grace=kill_grace)

    # ---- what each provider defines -------------------------------------------------

    @abc.abstractmethod
    def base_image(self, parameter: Parameter) -> str:
        """The builder (s2i) or base (img) image the build starts from."""

    @abc.abstractmethod
    def recipe_files(self, parameter: Parameter, bundle: Bundle) -> dict[str, str]:
        """The provider's own files of the build directory (a Dockerfile, .s2i/environment,
        requirements.txt): relative path -> text."""

    def source_files(self, parameter: Parameter, bundle: Bundle) -> dict[str, str | bytes]:
        """Every file of the build's source directory: the bundle (the code and what travels
        with it) and the recipe."""
        return {**bundle.payload(pack_files=True), **self.recipe_files(parameter, bundle)}

    @abc.abstractmethod
    def build_argv(self, directory: Path, parameter: Parameter, image: str) -> list[str]:
        """The build tool's command line."""

    @abc.abstractmethod
    def build_tool_key(self) -> str:
        """The config key that names the build tool (for the missing-tool error)."""

    # ---- the S2IClient --------------------------------------------------------------

    @property
    def script(self) -> str:
        """Where a cell's code is in the image when nothing travels with it."""
        return f"{self.code_dir}/{CODE_FILE}"

    def image_for(self, parameter: Parameter, bundle: Bundle | None = None) -> str:
        """`<registry>/<repository>:<content hash>` of the cell."""
        bundle = bundle if bundle is not None else bundle_of(parameter)
        content = {
            "recipe": RECIPE_VERSION,
            "provider": self.provider,
            "base": self.base_image(parameter),
            "code": parameter.code,
            "requirements": bundle.requirements(parameter.requirements),
        }
        if bundle.carries:  # what travels with the code is in the image too
            content["bundle"] = bundle.digest()
        digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode("utf-8"))
        return f"{self.config.registry}/{self.config.repository}:{digest.hexdigest()[:16]}"

    def source_to_image(
        self, shipment: Shipment, parameter: Parameter, progress: LineCallback | None = None
    ) -> Shipment:
        """Build and push the planned image (unless pushed before)."""
        say = progress or (lambda line: None)
        image = shipment.image
        bundle = bundle_of(parameter)
        if image != self.image_for(parameter, bundle):  # a file beside the notebook changed
            raise BuildError(
                f"what travels with the cell changed since it was planned ({image} would no "
                "longer hold it: a file of %files or a module beside the notebook was "
                "written meanwhile); nothing was built or submitted: run the cell again"
            )
        if shipment.travels_line:
            say(f"[ciao] {shipment.travels_line}")
        if image in self.pushed:
            say(f"[build] {image} is already built and pushed (same code, requirements and base)")
            return shipment
        self._require(self.build_argv(Path("."), parameter, image)[0], self.build_tool_key())
        self._require(self.config.push_command[0], "s2i.push_command")
        self.runner.check_cancelled("building the image")
        with tempfile.TemporaryDirectory(prefix=f"ciao-{self.provider}-") as tmp:
            directory = Path(tmp)
            for name, content in self.source_files(parameter, bundle).items():
                (directory / name).parent.mkdir(parents=True, exist_ok=True)
                if isinstance(content, bytes):
                    (directory / name).write_bytes(content)
                else:
                    (directory / name).write_text(content, encoding="utf-8")
            argv = self.build_argv(directory, parameter, image)
            say(f"[build] {shlex.join(redact(argv))}")
            result = self.runner.run(argv, "[build]", progress, cwd=tmp)
        if result.timed_out or result.returncode != 0:
            raise BuildError(self._build_failure(argv[0], result))
        push = [*self.config.push_command, image]
        say(f"[push] {shlex.join(push)}")
        result = self.runner.run(push, "[push]", progress)
        if result.timed_out or result.returncode != 0:
            raise BuildError(self._push_failure(image, result))
        self.pushed.add(image)
        say(f"[push] pushed {image}")
        return shipment

    def cancel(self) -> None:
        """Stop the build or push in progress (any thread, returns at once)."""
        self.runner.cancel()

    def plan(self, parameter: Parameter) -> Shipment:
        """What source_to_image will do (for %dryrun and the run): the image, and the
        build (commands and files; `<source dir>` stands for the temporary directory)."""
        bundle = bundle_of(parameter)
        image = self.image_for(parameter, bundle)
        files = {**bundle.texts, **self.recipe_files(parameter, bundle)}
        files.update({name: f"<{size} bytes>" for name, size in _binary_sizes(bundle).items()})
        return Shipment(
            image=image,
            script=f"{self.code_dir}/{bundle.entry}",
            build={
                "build": self.provider,
                "image": image,
                "alreadyPushed": image in self.pushed,
                "buildCommand": redact(self.build_argv(Path("<source dir>"), parameter, image)),
                "pushCommand": redact([*self.config.push_command, image]),
                "files": files,
            },
            travels=bundle.describe() if bundle.carries else {},
            travels_line=bundle.summary(),
        )

    # ---- failures ---------------------------------------------------------------------

    def _require(self, tool: str, key: str) -> None:
        if self.runner.which(tool) is None:
            name = os.path.basename(tool)
            hint = INSTALL_HINTS.get(name, f"install it, or change {key} in the config")
            raise BuildError(
                f"{tool} is not on the kernel's PATH (it runs {key.removeprefix('s2i.')}): "
                f"{hint}; nothing was submitted"
            )

    def _build_failure(self, tool: str, result: ToolResult) -> str:
        if result.timed_out:
            head = (
                f"the image build ({tool}) did not finish within {self.config.timeout:g} s "
                "(s2i.timeout) and was stopped"
            )
        else:
            head = f"the image build failed ({tool} exited with code {result.returncode})"
        return f"{head}; nothing was submitted.{_tail(result, 'build')}"

    def _push_failure(self, image: str, result: ToolResult) -> str:
        tool = self.config.push_command[0]
        if result.timed_out:
            head = (
                f"pushing {image} did not finish within {self.config.timeout:g} s "
                "(s2i.timeout) and was stopped"
            )
            return f"{head}; nothing was submitted.{_tail(result, 'push')}"
        output = "\n".join(result.tail)
        host = registry_host(self.config.registry)
        repository = f"{self.config.registry}/{self.config.repository}"
        if _MISSING_REPOSITORY.search(output):
            why = (
                f"it looks like the repository {repository} does not exist: create it in the "
                "registry (some, like ECR or Harbor, do not create repositories on push), or "
                "change s2i.registry / s2i.repository"
            )
        elif _AUTH.search(output):
            user = f" -u {self.config.username}" if self.config.username else ""
            why = (
                "it looks like an authentication problem (not logged in, or no right to push "
                f"to {repository}): log in once with `{os.path.basename(tool)} login{user} "
                f"{host}` and run the cell again; Ciao never handles the password"
            )
        elif _UNREACHABLE.search(output):
            why = f"the registry {host} could not be reached: check s2i.registry and the network"
        else:
            why = "neither an authentication problem nor a missing repository, by its output"
        return (
            f"pushing {image} failed ({tool} exited with code {result.returncode}): {why}; "
            f"nothing was submitted.{_tail(result, 'push')}"
        )


class S2IBuild(ImageBuild):
    """`s2i.provider: s2i`: the source-to-image builder of the framework."""

    provider = "s2i"
    #: sclorg Python builders run APP_FILE from their working directory.
    code_dir = "/opt/app-root/src"

    def base_image(self, parameter: Parameter) -> str:
        refuse_image(
            parameter,
            self.provider,
            "builds the cell on its source-to-image builder "
            f"(s2i.builders.{parameter.framework}), which %image cannot replace: set the "
            "builder in the config, or use s2i.provider img, which builds on %image",
        )
        return self.config.builders[parameter.framework]

    def recipe_files(self, parameter: Parameter, bundle: Bundle) -> dict[str, str]:
        return {
            REQUIREMENTS_FILE: requirements_text(bundle.requirements(parameter.requirements)),
            ".s2i/environment": f"APP_FILE={bundle.entry}\n",
        }

    def build_argv(self, directory: Path, parameter: Parameter, image: str) -> list[str]:
        return ["s2i", "build", str(directory), self.base_image(parameter), image]

    def build_tool_key(self) -> str:
        return "s2i.provider"


class DockerfileBuild(ImageBuild):
    """`s2i.provider: img`: a Dockerfile on the cell's `%image`, else the stock framework
    image (`images.<framework>`)."""

    provider = "img"
    code_dir = IMAGE_CODE_DIR

    def base_image(self, parameter: Parameter) -> str:
        """`%image` (the cell's), else `images.<framework>`."""
        return cell_image(parameter, self.images[parameter.framework])

    def dockerfile(self, parameter: Parameter, bundle: Bundle) -> str:
        lines = [
            "# Written by Ciao for one notebook cell.",
            f"FROM {self.base_image(parameter)}",
        ]
        if bundle.requirements(parameter.requirements):
            lines += [
                f"COPY {REQUIREMENTS_FILE} {IMAGE_CODE_DIR}/{REQUIREMENTS_FILE}",
                "RUN python -m pip install --no-cache-dir --disable-pip-version-check "
                f"-r {IMAGE_CODE_DIR}/{REQUIREMENTS_FILE}",
            ]
        shipped = sorted(bundle.payload_names(pack_files=True))
        if shipped == [CODE_FILE]:
            lines.append(f"COPY {CODE_FILE} {IMAGE_CODE_DIR}/{CODE_FILE}")
        else:  # the code and what travels with it, in one layer
            lines.append(f"COPY {' '.join(shipped)} {IMAGE_CODE_DIR}/")
        lines += [
            "ENV PYTHONUNBUFFERED=1",
            f'ENTRYPOINT ["python", "-u", "{IMAGE_CODE_DIR}/{bundle.entry}"]',
        ]
        return "\n".join(lines) + "\n"

    def recipe_files(self, parameter: Parameter, bundle: Bundle) -> dict[str, str]:
        return {
            REQUIREMENTS_FILE: requirements_text(bundle.requirements(parameter.requirements)),
            "Dockerfile": self.dockerfile(parameter, bundle),
        }

    def build_argv(self, directory: Path, parameter: Parameter, image: str) -> list[str]:
        return [*self.config.build_command, "-t", image, str(directory)]

    def build_tool_key(self) -> str:
        return "s2i.build_command"


def registry_host(registry: str) -> str:
    """The host part of `s2i.registry` (what `docker login` takes); docker.io for Docker
    Hub names like `myuser`."""
    first = registry.split("/", 1)[0]
    if "." in first or ":" in first or first == "localhost":
        return first
    return "docker.io"


def _tail(result: ToolResult, what: str) -> str:
    if not result.tail:
        return f" The {what} printed nothing."
    lines = "\n".join(f"    {line}" for line in result.tail)
    return f" Last lines of the {what} output:\n{lines}"


def _binary_sizes(bundle: Bundle) -> dict[str, int]:
    """The bundle's binary files (values, the files' archive) by size, for %dryrun."""
    sizes = bundle.sizes()
    return {name: sizes[name] for name in sizes if name not in bundle.texts}
