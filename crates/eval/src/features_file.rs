//! `eval/features.safetensors`: every scored image's pooled features, unit length, as written by
//! `lennonnet eval` and read by `lennonnet review`. One tensor `features` (n × dim, f32) and the
//! metadata key `ids` (a JSON array of the content ids in row order).

use safetensors::{Dtype, SafeTensors};

/// The features file in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureFile {
    pub ids: Vec<String>,
    pub dim: usize,
    /// Row-major, `ids.len() × dim`.
    pub rows: Vec<f32>,
}

/// The file's bytes for `ids` and their `rows` (`ids.len() × dim`).
pub fn encode(ids: &[String], dim: usize, rows: &[f32]) -> Result<Vec<u8>, String> {
    let bytes: Vec<u8> = rows.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(Dtype::F32, vec![ids.len(), dim], &bytes)
        .map_err(|e| e.to_string())?;
    let metadata = std::collections::HashMap::from([(
        "ids".to_string(),
        serde_json::to_string(ids).expect("ids serialise"),
    )]);
    safetensors::serialize([("features", view)], Some(metadata)).map_err(|e| e.to_string())
}

/// Reads the file's bytes; the error says what does not match.
pub fn decode(buf: &[u8]) -> Result<FeatureFile, String> {
    let (_, meta) = SafeTensors::read_metadata(buf).map_err(|e| e.to_string())?;
    let ids_json = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get("ids"))
        .ok_or("no `ids` in its metadata")?;
    let ids: Vec<String> =
        serde_json::from_str(ids_json).map_err(|e| format!("`ids` is not a JSON array: {e}"))?;
    let st = SafeTensors::deserialize(buf).map_err(|e| e.to_string())?;
    let t = st.tensor("features").map_err(|e| e.to_string())?;
    let (n, dim) = match (t.dtype(), t.shape()) {
        (Dtype::F32, &[n, dim]) => (n, dim),
        (dtype, shape) => {
            return Err(format!(
                "`features` is {dtype:?} {shape:?}, not an n × dim f32 matrix"
            ));
        }
    };
    if n != ids.len() {
        return Err(format!("{n} rows of features but {} ids", ids.len()));
    }
    let rows = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(FeatureFile { ids, dim, rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_reads_back_as_written_and_a_mismatch_is_named() {
        let ids: Vec<String> = ["a", "b"].map(String::from).to_vec();
        let f = decode(&encode(&ids, 2, &[1.0, 0.0, 0.6, 0.8]).unwrap()).unwrap();
        assert_eq!(
            f,
            FeatureFile {
                ids,
                dim: 2,
                rows: vec![1.0, 0.0, 0.6, 0.8]
            }
        );
        assert!(decode(b"junk").is_err());
    }
}
