"""The reference Python scoring service: Flask + onnxruntime, the usual way a model is served
from Python; JSON in ({"data": [[...]]}), JSON out ({"result": [[...]]}), like mlgate's ONNX
runtime. Run under gunicorn with threaded workers (keep-alive on), as its documentation
recommends: MODEL=model.onnx gunicorn -k gthread -w 5 --threads 2 -b 127.0.0.1:PORT app:app"""
import os

import numpy as np
import onnxruntime as ort
from flask import Flask, jsonify, request

options = ort.SessionOptions()
# Several worker processes already use every core; onnxruntime's own pool would oversubscribe.
options.intra_op_num_threads = 1
session = ort.InferenceSession(os.environ["MODEL"], options, providers=["CPUExecutionProvider"])
input_name = session.get_inputs()[0].name
app = Flask(__name__)


@app.post("/score")
def score():
    data = np.asarray(request.get_json(force=True)["data"], dtype=np.float32)
    out = session.run(None, {input_name: data})[0]
    return jsonify({"result": out.tolist()})
