"""An Azure ML entry script: init() runs once per worker, run() once per request.

It imports helper.py from its source directory: `mlgate ml model deploy` uploads the whole
folder named by sourceDirectory in inference-config.json (less what .amlignore leaves out).
"""
import json
import os

from helper import predict


def init():
    global model
    # AZUREML_MODEL_DIR holds the registered model's files (examples/coef-model).
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "coef.json")) as f:
        model = json.load(f)


def run(raw_data):
    rows = json.loads(raw_data)["data"]
    return [predict(model, row) for row in rows]
