"""``alembert serve-web DIR [--port 8000]``: serve a web export on 127.0.0.1 for a person to open.

Only the loopback address, never another interface: the folder is a demo, not a deployment. The
server sends the cross-origin isolation headers that multi-threaded WebAssembly needs."""

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("serve-web", help="serve a web export (alembert export --web) on 127.0.0.1")
    p.add_argument("folder", type=Path, help="folder written by alembert export MODEL --web --output DIR")
    p.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (default 8000; 0: any free one)")
    p.add_argument("--log", action="store_true", help="print each request")
    p.set_defaults(run=run)


def run(args) -> int:
    from alembert.export.web import make_server, page_url

    server = make_server(args.folder, port=args.port, quiet=not args.log)
    print(f"serving {args.folder} at {page_url(server, args.folder)} (127.0.0.1 only; Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
