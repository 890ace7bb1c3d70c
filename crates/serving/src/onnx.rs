//! ONNX inference in process with tract.

use serde_json::{Map, Value, json};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::DimLike;

#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    /// The request is not what the model takes: a 400 with this message.
    #[error("{0}")]
    BadInput(String),
    /// The model itself failed: a 500, the cause logged.
    #[error("inference failed: {0}")]
    Runtime(String),
}

#[derive(Debug, thiserror::Error)]
#[error("the model cannot be loaded: {0}")]
pub struct LoadError(pub String);

/// One input the model takes: its name and its shape (`None` for a symbolic dimension such
/// as the batch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSpec {
    pub name: String,
    pub shape: Vec<Option<usize>>,
}

type Plan = std::sync::Arc<TypedRunnableModel>;

/// A loaded, optimised model. Cheap to share; `score` may run on many threads at once.
pub struct OnnxModel {
    plan: Plan,
    inputs: Vec<InputSpec>,
    outputs: Vec<String>,
}

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxModel")
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .finish()
    }
}

impl OnnxModel {
    /// Parses and optimises an ONNX file. f32 inputs and outputs.
    pub fn load(bytes: &[u8]) -> Result<Self, LoadError> {
        let err = |e: TractError| LoadError(format!("{e:#}"));
        let model =
            tract_onnx::onnx().model_for_read(&mut std::io::Cursor::new(bytes)).map_err(err)?;
        let typed = model.into_optimized().map_err(err)?;
        let inputs = typed
            .input_outlets()
            .map_err(err)?
            .iter()
            .map(|o| {
                let fact = typed.outlet_fact(*o)?;
                let shape = fact.shape.iter().map(|d| d.to_usize().ok()).collect();
                Ok(InputSpec { name: typed.node(o.node).name.clone(), shape })
            })
            .collect::<TractResult<Vec<_>>>()
            .map_err(err)?;
        let outputs = typed
            .output_outlets()
            .map_err(err)?
            .iter()
            .map(|o| typed.node(o.node).name.clone())
            .collect();
        let plan = typed.into_runnable().map_err(err)?;
        Ok(Self { plan, inputs, outputs })
    }

    pub fn inputs(&self) -> &[InputSpec] {
        &self.inputs
    }

    /// Scores a JSON request: `{"data": [[...], ...]}` for a single-input model, or
    /// `{"inputs": {"name": [[...]]}}`. Answers `{"result": [[...]]}` for one output, or
    /// `{"outputs": {"name": ...}}` for several.
    pub fn score(&self, request: &Value) -> Result<Value, ScoreError> {
        let obj = request
            .as_object()
            .ok_or_else(|| ScoreError::BadInput("the body must be a JSON object".into()))?;
        let mut tensors: TVec<TValue> = tvec![];
        if let Some(data) = obj.get("data") {
            if self.inputs.len() != 1 {
                return Err(ScoreError::BadInput(format!(
                    "this model takes {} inputs; send them by name in \"inputs\"",
                    self.inputs.len()
                )));
            }
            tensors.push(to_tensor(&self.inputs[0], data)?.into());
        } else if let Some(named) = obj.get("inputs").and_then(Value::as_object) {
            for spec in &self.inputs {
                let v = named.get(&spec.name).ok_or_else(|| {
                    ScoreError::BadInput(format!("the input \"{}\" is missing", spec.name))
                })?;
                tensors.push(to_tensor(spec, v)?.into());
            }
        } else {
            return Err(ScoreError::BadInput(
                "send {\"data\": [[...]]} or {\"inputs\": {...}}".into(),
            ));
        }
        let out = self.plan.run(tensors).map_err(|e| ScoreError::Runtime(format!("{e:#}")))?;
        let mut values = Vec::with_capacity(out.len());
        for t in out.iter() {
            values.push(to_json(t)?);
        }
        if values.len() == 1 {
            return Ok(json!({ "result": values.remove(0) }));
        }
        let mut named = Map::new();
        for (name, v) in self.outputs.iter().zip(values) {
            named.insert(name.clone(), v);
        }
        Ok(json!({ "outputs": named }))
    }
}

/// Flattens nested JSON arrays of numbers into a tensor, checking its shape against the
/// model's input.
fn to_tensor(spec: &InputSpec, v: &Value) -> Result<Tensor, ScoreError> {
    let mut shape = Vec::new();
    let mut cur = v;
    while let Some(a) = cur.as_array() {
        shape.push(a.len());
        match a.first() {
            Some(first) => cur = first,
            None => break,
        }
    }
    if shape.len() != spec.shape.len() {
        return Err(ScoreError::BadInput(format!(
            "\"{}\" must have {} dimensions, got {}",
            spec.name,
            spec.shape.len(),
            shape.len()
        )));
    }
    for (i, (got, want)) in shape.iter().zip(&spec.shape).enumerate() {
        if let Some(w) = want
            && got != w
        {
            return Err(ScoreError::BadInput(format!(
                "\"{}\" dimension {i} must be {w}, got {got}",
                spec.name
            )));
        }
    }
    let mut flat = Vec::with_capacity(shape.iter().product());
    flatten(v, 0, &shape, &mut flat)
        .map_err(|m| ScoreError::BadInput(format!("\"{}\": {m}", spec.name)))?;
    Tensor::from_shape(&shape, &flat).map_err(|e| ScoreError::BadInput(e.to_string()))
}

fn flatten(v: &Value, depth: usize, shape: &[usize], out: &mut Vec<f32>) -> Result<(), String> {
    if depth == shape.len() {
        let n = v.as_f64().ok_or_else(|| format!("expected a number, got {v}"))?;
        out.push(n as f32);
        return Ok(());
    }
    let a = v.as_array().ok_or("the nesting is ragged")?;
    if a.len() != shape[depth] {
        return Err("rows of different lengths".into());
    }
    a.iter().try_for_each(|x| flatten(x, depth + 1, shape, out))
}

fn to_json(t: &TValue) -> Result<Value, ScoreError> {
    let view = t.to_plain_array_view::<f32>().map_err(|e| ScoreError::Runtime(format!("{e:#}")))?;
    fn build(view: &tract_ndarray::ArrayViewD<f32>) -> Value {
        if view.ndim() == 0 {
            return json!(view.iter().next().copied().unwrap_or_default());
        }
        Value::Array(view.outer_iter().map(|sub| build(&sub)).collect())
    }
    Ok(build(&view))
}

/// Builds a small linear-regression ONNX model, `Y = X·W + B` with `X: [N, in]`, `W: [in,
/// out]`, `B: [out]` (tests and benchmarks generate their models with it).
pub fn linear_regression_model(weights: &[Vec<f32>], bias: &[f32]) -> Vec<u8> {
    use prost::Message;
    use tract_onnx::pb;
    let (n_in, n_out) = (weights.len(), bias.len());
    let dim = |d: pb::tensor_shape_proto::dimension::Value| pb::tensor_shape_proto::Dimension {
        value: Some(d),
        ..Default::default()
    };
    let value_info =
        |name: &str, dims: Vec<pb::tensor_shape_proto::Dimension>| pb::ValueInfoProto {
            name: name.into(),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type: pb::tensor_proto::DataType::Float as i32,
                    shape: Some(pb::TensorShapeProto { dim: dims }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        };
    use pb::tensor_shape_proto::dimension::Value as D;
    let tensor = |name: &str, dims: Vec<i64>, data: Vec<f32>| pb::TensorProto {
        name: name.into(),
        dims,
        data_type: pb::tensor_proto::DataType::Float as i32,
        float_data: data,
        ..Default::default()
    };
    let graph = pb::GraphProto {
        name: "linear".into(),
        node: vec![
            pb::NodeProto {
                op_type: "MatMul".into(),
                input: vec!["X".into(), "W".into()],
                output: vec!["XW".into()],
                name: "matmul".into(),
                ..Default::default()
            },
            pb::NodeProto {
                op_type: "Add".into(),
                input: vec!["XW".into(), "B".into()],
                output: vec!["Y".into()],
                name: "add".into(),
                ..Default::default()
            },
        ],
        initializer: vec![
            tensor(
                "W",
                vec![n_in as i64, n_out as i64],
                weights.iter().flatten().copied().collect(),
            ),
            tensor("B", vec![n_out as i64], bias.to_vec()),
        ],
        input: vec![value_info(
            "X",
            vec![dim(D::DimParam("N".into())), dim(D::DimValue(n_in as i64))],
        )],
        output: vec![value_info(
            "Y",
            vec![dim(D::DimParam("N".into())), dim(D::DimValue(n_out as i64))],
        )],
        ..Default::default()
    };
    let model = pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 13 }],
        producer_name: "mlgate".into(),
        graph: Some(graph),
        ..Default::default()
    };
    model.encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_linear_model_scores_correctly_and_refuses_bad_shapes() {
        let bytes = linear_regression_model(
            &[vec![1.0, 2.0], vec![3.0, 4.0], vec![5.0, 6.0]],
            &[0.5, -1.0],
        );
        let m = OnnxModel::load(&bytes).unwrap();
        assert_eq!(m.inputs()[0].shape, vec![None, Some(3)]);
        let out = m.score(&json!({"data": [[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]]})).unwrap();
        assert_eq!(out, json!({"result": [[1.5, 1.0], [9.5, 11.0]]}));
        let named = m.score(&json!({"inputs": {"X": [[0.0, 0.0, 1.0]]}})).unwrap();
        assert_eq!(named, json!({"result": [[5.5, 5.0]]}));
        for bad in [
            json!({"data": [[1.0, 2.0]]}),
            json!({"data": [1.0, 2.0, 3.0]}),
            json!({"data": [[1.0, 2.0, 3.0], [1.0]]}),
            json!({"data": [["a", 2.0, 3.0]]}),
            json!({"nothing": 1}),
            json!([1, 2]),
        ] {
            assert!(matches!(m.score(&bad), Err(ScoreError::BadInput(_))), "{bad}");
        }
        assert!(OnnxModel::load(b"not an onnx file").is_err());
    }
}
