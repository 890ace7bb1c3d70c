"""mlgate's entry-script worker: runs an Azure ML score.py unchanged.

Protocol on the real stdout/stdin, one JSON object per line:
  worker -> server  {"ready": true} once init() returned, or {"init_error": "<traceback>"}
  server -> worker  {"body": "<raw request text>"}
  worker -> server  {"result": <JSON text of run()'s answer>} or {"error": "<traceback>"}
Everything score.py prints goes to stderr, which the server keeps as the service's log.
"""
import importlib.util
import json
import os
import sys
import traceback

protocol = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)  # user code's print() now lands in the log, not in the protocol
sys.stdout = sys.stderr

limit = os.environ.get("MLGATE_MEMORY_BYTES")
if limit:
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (int(limit), int(limit)))


def say(obj):
    protocol.write(json.dumps(obj) + "\n")
    protocol.flush()


try:
    spec = importlib.util.spec_from_file_location("score", os.environ["MLGATE_ENTRY_SCRIPT"])
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
