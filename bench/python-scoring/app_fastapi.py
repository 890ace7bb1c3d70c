"""The reference scoring service as a team would write it today: FastAPI + onnxruntime, run by
uvicorn with one worker per core (uvicorn[standard]: uvloop and httptools), keep-alive on.
JSON in ({"data": [[...]]}), JSON out ({"result": [[...]]}), like mlgate's ONNX runtime.
Run: MODEL=model.onnx uvicorn --workers 2 --no-access-log --port PORT app_fastapi:app"""
import os

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI
from pydantic import BaseModel

options = ort.SessionOptions()
# One process per core already uses every core; onnxruntime's own pool would oversubscribe.
options.intra_op_num_threads = 1
session = ort.InferenceSession(os.environ["MODEL"], options, providers=["CPUExecutionProvider"])
input_name = session.get_inputs()[0].name
app = FastAPI()


class Request(BaseModel):
    data: list[list[float]]


# `async def`: the model runs in microseconds, so a thread-pool hop would cost more than it saves.
@app.post("/score")
async def score(req: Request):
    out = session.run(None, {input_name: np.asarray(req.data, dtype=np.float32)})[0]
    return {"result": out.tolist()}
