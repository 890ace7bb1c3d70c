//! Writes a linear ONNX model with deterministic weights, for benchmarks:
//! `cargo run --release -p mlgate-serving --example linear_onnx -- OUT.onnx INPUTS OUTPUTS`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (out, n_in, n_out) =
        (&args[1], args[2].parse::<usize>().unwrap(), args[3].parse::<usize>().unwrap());
    let weights: Vec<Vec<f32>> = (0..n_in)
        .map(|i| (0..n_out).map(|j| ((i * 31 + j * 17) % 13) as f32 / 13.0 - 0.5).collect())
        .collect();
    let bias: Vec<f32> = (0..n_out).map(|j| j as f32 / 10.0).collect();
    std::fs::write(out, mlgate_serving::onnx::linear_regression_model(&weights, &bias)).unwrap();
}
