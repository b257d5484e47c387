"""``python -m tools.docgen cli|api``: print a generated reference page (redirect it into docs/reference/)."""

from __future__ import annotations

import sys

from tools.docgen import PAGES


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] not in PAGES:
        lines = [f"  python -m tools.docgen {name} > {path}" for name, (_, path) in PAGES.items()]
        print("usage: python -m tools.docgen {" + ",".join(PAGES) + "}\n" + "\n".join(lines), file=sys.stderr)
        return 2
    sys.stdout.write(PAGES[argv[0]][0]())
    return 0


if __name__ == "__main__":
    sys.exit(main())
