"""`python -m ciao` / `ciao`: run the kernel, install its kernelspec, or submit and
follow jobs from a terminal or CI (`ciao submit train.py --worker 2 -- --epochs 3`)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ciao", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    kernel = sub.add_parser("kernel", help="run the kernel (Jupyter starts it this way)")
    kernel.add_argument("-f", "--connection-file", required=True)

    install = sub.add_parser("install", help="install the `ciao` kernelspec")
    where = install.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="for the current user")
    where.add_argument("--sys-prefix", action="store_true", help="into sys.prefix (a venv)")
    where.add_argument("--prefix", metavar="DIR", help="into DIR/share/jupyter/kernels")
    install.add_argument("--name", default="ciao", help="kernel name (default: ciao)")
    install.add_argument("--display-name", help="name shown in the launcher")

    run = sub.add_parser("run", help="execute a notebook on the ciao kernel and print it")
    run.add_argument("notebook")
    run.add_argument("--kernel", default="ciao", help="kernelspec name (default: ciao)")
    run.add_argument("--output", metavar="FILE", help="also save the executed notebook")

    gateway = sub.add_parser("gateway", help="serve the kernel behind Jupyter Kernel Gateway")
    gateway.add_argument(
        "--ip", default="127.0.0.1", help="address to listen on (in a pod: 0.0.0.0)"
    )
    gateway.add_argument("--port", type=int, default=8889)

    from ciao.api.cli import COMMANDS, add_commands

    add_commands(sub)
    argv = sys.argv[1:] if argv is None else list(argv)
    after = argv.index("--") if "--" in argv else len(argv)  # the script's own arguments
    args = parser.parse_args(argv[:after])
    if args.command == "submit":
        args.args += argv[after + 1 :]
    elif after < len(argv):
        parser.error(f"ciao {args.command} takes no arguments after --")
    if args.command in COMMANDS:
        from ciao.api.cli import main as api_main

        return api_main(args)
    if args.command == "gateway":
        from ciao.gateway import serve

        return serve(args.ip, args.port)
    if args.command == "kernel":
        from ciao.app import run_kernel

        return run_kernel(args.connection_file)
    if args.command == "run":
        from ciao.runner import run_notebook

        return run_notebook(args.notebook, kernel_name=args.kernel, output=args.output)
    from ciao.install import install_kernelspec

    prefix = sys.prefix if args.sys_prefix else args.prefix
    path = install_kernelspec(
        name=args.name, user=args.user, prefix=prefix, display_name=args.display_name
    )
    print(f"Installed kernelspec {args.name} in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
