"""mlgate's entry-script worker: runs an Azure ML score.py unchanged.

Usage: python -u mlgate_worker.py ENTRY_SCRIPT MEMORY_BYTES (0: no limit)

Protocol on the real stdout/stdin, one JSON object per line:
  worker -> server  {"ready": true} once init() returned, or {"init_error": "<traceback>"}
  server -> worker  {"body": "<raw request text>"}
  worker -> server  {"result": <JSON text of run()'s answer>} or {"error": "<traceback>"}
Everything score.py prints goes to stderr, which the server keeps as the service's log.
"""
import os
import resource

# No descriptor the server may have leaked reaches user code. (close_range: one syscall.)
_soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
os.closerange(3, _soft if 0 < _soft < (1 << 24) else (1 << 24))

import importlib.util
import json
import sys
import traceback

entry_script = sys.argv[1]
limit = int(sys.argv[2])
if limit:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

protocol = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)  # user code's print() now lands in the log, not in the protocol
sys.stdout = sys.stderr
# The entry script's folder comes first on the import path, as in Azure ML.
sys.path.insert(0, os.path.dirname(os.path.abspath(entry_script)))


def say(obj):
    protocol.write(json.dumps(obj) + "\n")
    protocol.flush()


try:
    spec = importlib.util.spec_from_file_location("score", entry_script)
    score = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(score)
    if hasattr(score, "init"):
        score.init()
except BaseException:
    say({"init_error": traceback.format_exc()})
    sys.exit(3)

say({"ready": True})
for line in sys.stdin:
    try:
        request = json.loads(line)
        answer = score.run(request["body"])
        say({"result": json.dumps(answer)})
    except BaseException:
        say({"error": traceback.format_exc()})
