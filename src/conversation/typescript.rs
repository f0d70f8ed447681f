//! The `# Tools` section of a developer message: a namespace of TypeScript-style function types
//! from JSON schemas. A port of openai-harmony 0.0.8's `template_tools_section` and
//! `json_schema_to_typescript` (Apache-2.0), kept line for line so the model sees the layout it
//! was trained on; tests compare it with the crate itself.

use serde_json::Value;

use super::render::FunctionTool;

pub fn tools_section(namespace: &str, tools: &[FunctionTool]) -> String {
    let mut lines = vec![format!("## {namespace}\n")];
    if !tools.is_empty() {
        lines.push(format!("namespace {namespace} {{\n"));
        for tool in tools {
            for line in tool.description.lines() {
                lines.push(format!("// {line}"));
            }
            match &tool.parameters {
                Some(params) => lines.push(format!(
                    "type {} = (_: {}) => any;\n",
                    tool.name,
                    to_typescript(params, "")
                )),
                None => lines.push(format!("type {} = () => any;\n", tool.name)),
            }
        }
        lines.push(format!("}} // namespace {namespace}"));
    }
    ["# Tools".to_owned(), lines.join("\n")].join("\n\n")
}

fn is_enum(schema: &Value) -> bool {
    schema
        .get("enum")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn nullable(v: &Value) -> bool {
    v.get("nullable").and_then(Value::as_bool).unwrap_or(false)
}

/// `default: ...` as harmony writes it: strings quoted unless the schema is an enum.
fn default_comment(schema: &Value, default: &Value, quote_enum_strings: bool) -> String {
    match default.as_str() {
        Some(s) if !is_enum(schema) => format!("default: \"{s}\""),
        Some(s) if !quote_enum_strings => format!("default: {s}"),
        _ => format!("default: {default}"),
    }
}

fn with_null(variant: &Value, ty: String) -> String {
    if nullable(variant) && !ty.contains("null") {
        format!("{ty} | null")
    } else {
        ty
    }
}

fn to_typescript(schema: &Value, indent: &str) -> String {
    if let Some(variants) = schema.get("oneOf").and_then(Value::as_array) {
        let mut out = String::new();
        for variant in variants {
            out.push_str(&format!("\n{indent} | "));
            let ty = to_typescript(variant, &format!("{indent}   "));
            out.push_str(&with_null(variant, ty));
            let mut comments = Vec::new();
            if let Some(d) = str_of(variant, "description") {
                comments.push(d.to_owned());
            }
            if let Some(default) = variant.get("default") {
                // harmony's top-level oneOf writes enum string defaults with their JSON quotes.
                comments.push(default_comment(variant, default, true));
            }
            if !comments.is_empty() {
                out.push_str(&format!(" // {}", comments.join(" ")));
            }
        }
        return out;
    }
    if let Some(types) = schema.get("type").and_then(Value::as_array) {
        let names: Vec<&str> = types
            .iter()
            .filter_map(Value::as_str)
            .map(|t| if t == "integer" { "number" } else { t })
            .collect();
        if !names.is_empty() {
            return names.join(" | ");
        }
    }
    match str_of(schema, "type") {
        Some("object") => object(schema, indent),
        Some("string") => {
            let values: Vec<String> = schema
                .get("enum")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(|s| format!("\"{s}\""))
                        .collect()
                })
                .unwrap_or_default();
            if values.is_empty() {
                "string".to_owned()
            } else {
                values.join(" | ")
            }
        }
        Some("number") | Some("integer") => "number".to_owned(),
        Some("boolean") => "boolean".to_owned(),
        Some("array") => match schema.get("items") {
            Some(items) => format!("{}[]", to_typescript(items, indent)),
            None => "Array<any>".to_owned(),
        },
        _ => "any".to_owned(),
    }
}

fn object(schema: &Value, indent: &str) -> String {
    let mut out = String::new();
    if let Some(d) = str_of(schema, "description") {
        out.push_str(&format!("{indent}// {d}\n"));
    }
    out.push_str("{\n");
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for (key, val) in props {
            let optional = if required.contains(&key.as_str()) {
                ""
            } else {
                "?"
            };
            if let Some(title) = str_of(val, "title") {
                out.push_str(&format!("{indent}// {title}\n{indent}//\n"));
            }
            if val.get("oneOf").is_none() {
                if let Some(d) = str_of(val, "description") {
                    out.push_str(&format!("{indent}// {d}\n"));
                }
            }
            if let Some(examples) = val.get("examples").and_then(Value::as_array) {
                if !examples.is_empty() {
                    out.push_str(&format!("{indent}// Examples:\n"));
                    for ex in examples.iter().filter_map(Value::as_str) {
                        out.push_str(&format!("{indent}// - \"{ex}\"\n"));
                    }
                }
            }
            if let Some(variants) = val.get("oneOf").and_then(Value::as_array) {
                property_one_of(&mut out, key, optional, val, variants, indent);
                continue;
            }
            let ty = to_typescript(val, &format!("{indent}    "));
            out.push_str(&format!("{indent}{key}{optional}: {},", with_null(val, ty)));
            if let Some(default) = val.get("default") {
                out.push_str(&format!(" // {}", default_comment(val, default, false)));
            }
            out.push('\n');
        }
    }
    out.push_str(&format!("{indent}}}"));
    out
}

fn property_one_of(
    out: &mut String,
    key: &str,
    optional: &str,
    val: &Value,
    variants: &[Value],
    indent: &str,
) {
    let property_desc = str_of(val, "description");
    let skip_desc = property_desc.is_some()
        && variants
            .first()
            .and_then(|v| str_of(v, "description"))
            .is_some_and(|d| Some(d) == property_desc);
    let mut desc_above = false;
    if !skip_desc {
        if let Some(d) = property_desc {
            out.push_str(&format!("{indent}// {d}\n"));
            desc_above = true;
        }
    }
    if let Some(default) = val.get("default") {
        out.push_str(&format!(
            "{indent}// {}\n",
            default_comment(val, default, false)
        ));
    }
    out.push_str(&format!("{indent}{key}{optional}:\n"));
    for (i, variant) in variants.iter().enumerate() {
        out.push_str(&format!("{indent} | "));
        let ty = to_typescript(variant, &format!("{indent}   "));
        out.push_str(&with_null(variant, ty));
        let mut comments = Vec::new();
        if !(i == 0 && desc_above) {
            if let Some(d) = str_of(variant, "description") {
                if Some(d) != property_desc {
                    comments.push(d.to_owned());
                }
            }
        }
        if let Some(default) = variant.get("default") {
            comments.push(default_comment(variant, default, false));
        }
        if !comments.is_empty() {
            out.push_str(&format!(" // {}", comments.join(" ")));
        }
        out.push('\n');
    }
    out.push_str(&format!("{indent},\n"));
}
