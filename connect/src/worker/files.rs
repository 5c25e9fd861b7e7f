//! Config files: Java `.properties`, `.json` (a flat map, or Kafka's
//! `{"name": ..., "config": {...}}`), and `.toml` (nested tables flatten to
//! dotted keys, so `tasks.max = 1` and `"tasks.max" = 1` mean the same).

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::ConnectError;

/// A flat config read from a file.
pub type FlatConfig = BTreeMap<String, String>;

/// Reads a config file, choosing the format by extension (`.json`,
/// `.toml`, anything else as `.properties`).
///
/// # Errors
/// [`ConnectError::ConfigFile`] naming the file and, where known, the line
/// or key.
pub fn load_config_file(path: &Path) -> Result<FlatConfig, ConnectError> {
    let fail = |reason: String| ConnectError::ConfigFile { path: path.to_path_buf(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => parse_json(&text).map_err(fail),
        Some("toml") => parse_toml(&text).map_err(fail),
        _ => parse_properties(&text).map_err(fail),
    }
}

/// Parses Java properties: `key=value`, `key: value` or `key value`; `#` and
/// `!` comments; `\` line continuations; `\t`, `\n`, `\\`, `\uXXXX` escapes.
///
/// # Errors
/// A message naming the line of a bad escape.
pub fn parse_properties(text: &str) -> Result<FlatConfig, String> {
    let mut out = FlatConfig::new();
    let mut lines = text.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let mut logical = line.trim_start().to_string();
        if logical.is_empty() || logical.starts_with('#') || logical.starts_with('!') {
            continue;
        }
        while ends_with_odd_backslashes(&logical) {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(next.trim_start()),
                None => break,
            }
        }
        let (key, value) = split_property(&logical);
        let key = unescape(key).map_err(|e| format!("line {}: {e}", n + 1))?;
        let value = unescape(value).map_err(|e| format!("line {}: {e}", n + 1))?;
        out.insert(key, value);
    }
    Ok(out)
}

fn ends_with_odd_backslashes(s: &str) -> bool {
    s.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1
}

fn split_property(line: &str) -> (&str, &str) {
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' | ':' => return (&line[..i], line[i + 1..].trim_start()),
            c if c.is_whitespace() => {
                let rest = line[i..].trim_start();
                let rest = rest.strip_prefix(['=', ':']).unwrap_or(rest);
                return (&line[..i], rest.trim_start());
            }
            _ => {}
        }
    }
    (line, "")
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = u32::from_str_radix(&hex, 16)
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("bad unicode escape `\\u{hex}`"))?;
                out.push(code);
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

fn scalar_json(key: &str, value: &serde_json::Value) -> Result<String, String> {
    use serde_json::Value as J;
    Ok(match value {
        J::String(s) => s.clone(),
        J::Number(n) => n.to_string(),
        J::Bool(b) => b.to_string(),
        J::Null => String::new(),
        J::Array(items) => {
            items.iter().map(|v| scalar_json(key, v)).collect::<Result<Vec<_>, _>>()?.join(",")
        }
        J::Object(_) => {
            return Err(format!("key `{key}`: expected a string, number or boolean, got an object"))
        }
    })
}

/// Parses a JSON config: a flat object of strings (numbers and booleans are
/// accepted), or Kafka's `{"name": "...", "config": {...}}`.
///
/// # Errors
/// A message naming the bad key, or the JSON syntax error.
pub fn parse_json(text: &str) -> Result<FlatConfig, String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let serde_json::Value::Object(map) = value else {
        return Err("expected a JSON object".into());
    };
    let mut out = FlatConfig::new();
    if let Some(serde_json::Value::Object(config)) = map.get("config") {
        for (k, v) in config {
            out.insert(k.clone(), scalar_json(k, v)?);
        }
        if let Some(name) = map.get("name") {
            out.insert("name".into(), scalar_json("name", name)?);
        }
        if let Some(other) = map.keys().find(|k| *k != "config" && *k != "name") {
            return Err(format!("key `{other}`: only `name` and `config` may stand beside `config`"));
        }
        return Ok(out);
    }
    for (k, v) in &map {
        out.insert(k.clone(), scalar_json(k, v)?);
    }
    Ok(out)
}

/// Parses a TOML config; nested tables flatten to dotted keys, and a
/// top-level `config` table with `name` is read like Kafka's JSON form.
///
/// # Errors
/// A message naming the bad key, or the TOML syntax error.
pub fn parse_toml(text: &str) -> Result<FlatConfig, String> {
    let table: toml::Table = text.parse().map_err(|e| format!("invalid TOML: {e}"))?;
    let mut out = FlatConfig::new();
    let has_config = matches!(table.get("config"), Some(toml::Value::Table(_)));
    for (k, v) in &table {
        if has_config && k == "config" {
            if let toml::Value::Table(t) = v {
                for (ck, cv) in t {
                    flatten_toml(ck, cv, &mut out)?;
                }
            }
        } else {
            flatten_toml(k, v, &mut out)?;
        }
    }
    Ok(out)
}

fn flatten_toml(key: &str, value: &toml::Value, out: &mut FlatConfig) -> Result<(), String> {
    use toml::Value as T;
    let s = match value {
        T::Table(t) => {
            for (k, v) in t {
                flatten_toml(&format!("{key}.{k}"), v, out)?;
            }
            return Ok(());
        }
        T::String(s) => s.clone(),
        T::Integer(i) => i.to_string(),
        T::Float(f) => f.to_string(),
        T::Boolean(b) => b.to_string(),
        T::Datetime(d) => d.to_string(),
        T::Array(items) => items
            .iter()
            .map(|v| match v {
                T::String(s) => Ok(s.clone()),
                T::Integer(i) => Ok(i.to_string()),
                T::Float(f) => Ok(f.to_string()),
                T::Boolean(b) => Ok(b.to_string()),
                _ => Err(format!("key `{key}`: list items must be strings, numbers or booleans")),
            })
            .collect::<Result<Vec<_>, _>>()?
            .join(","),
    };
    out.insert(key.to_string(), s);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_accept_separators_comments_continuations_and_escapes() {
        let p = parse_properties(
            "# comment\n! also\nname=file-source\ntopic: lines\nfile /tmp/a\\ b.txt\n\
             transforms=a,\\\n   b\nx=\\u0041\\t\n",
        )
        .unwrap();
        assert_eq!(p["name"], "file-source");
        assert_eq!(p["topic"], "lines");
        assert_eq!(p["file"], "/tmp/a b.txt");
        assert_eq!(p["transforms"], "a,b");
        assert_eq!(p["x"], "A\t");
    }

    #[test]
    fn json_takes_the_flat_and_the_kafka_form_and_names_a_nested_key() {
        let flat = parse_json(r#"{"name":"a","tasks.max":2,"errors.log.enable":true}"#).unwrap();
        assert_eq!((flat["name"].as_str(), flat["tasks.max"].as_str()), ("a", "2"));
        let kafka = parse_json(r#"{"name":"a","config":{"connector.class":"FileStreamSink"}}"#).unwrap();
        assert_eq!(kafka["connector.class"], "FileStreamSink");
        assert_eq!(kafka["name"], "a");
        let err = parse_json(r#"{"a":{"b":1}}"#).unwrap_err();
        assert!(err.contains("key `a`"), "{err}");
    }

    #[test]
    fn toml_dotted_and_quoted_keys_mean_the_same() {
        let t = parse_toml("name = \"a\"\ntasks.max = 2\n\"topics\" = [\"x\", \"y\"]\n").unwrap();
        assert_eq!(t["tasks.max"], "2");
        assert_eq!(t["topics"], "x,y");
        let k = parse_toml("name = \"a\"\n[config]\n\"connector.class\" = \"FileStreamSource\"\n").unwrap();
        assert_eq!(k["connector.class"], "FileStreamSource");
    }
}
