"""Child process for the multi-process store tests; run as a script, prints one result per line.

store_child.py pragmas FOLDER                      -> JSON of the read-back PRAGMAs
store_child.py labels FOLDER CASE_ID REVIEWER N    -> each acknowledged label id
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from sos_core.review import ReviewStore
    from sos_core.review.connection import connect, read_pragmas

    cmd, folder = argv[0], Path(argv[1])
    if cmd == "pragmas":
        conn = connect(folder / "review.sqlite3")
        print(json.dumps(read_pragmas(conn)), flush=True)
        sys.stdin.read()  # hold the connection open until the parent closes our stdin
        conn.close()
        return 0
    if cmd == "labels":
        case_id, reviewer, n = argv[2], argv[3], int(argv[4])
        with ReviewStore.open(folder, create=False) as store:
            for i in range(n):
                label = store.add_label(case_id, stage=i % 4, box=(1, 2, 20, 30), reviewer=reviewer)
                print(label.id, flush=True)  # acknowledged: add_label returned after COMMIT
        return 0
    raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
