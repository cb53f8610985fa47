//! The hand-written OpenAPI 3.0 document served at `/v1/openapi.json`.
//!
//! It describes the routes in [`crate::app`] and the rows of
//! `overreach_model::results` as the API returns them. Keep it in step with
//! `routes.rs`; a test checks that every route is documented.

use serde_json::{json, Value};

use crate::routes::SINCE_EXAMPLE;
use crate::FINDING_KINDS;

/// The OpenAPI document.
pub fn document() -> Value {
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Overreach API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Read-only access to the last analysis of workload identities: \
                per-identity baselines, findings of reach outside the baseline, and \
                least-privilege suggestions. Results come from `overreach analyze`; \
                the server reloads them when a new analysis finishes."
        },
        "paths": {
            "/healthz": {
                "get": {
                    "summary": "Liveness: the server is up",
                    "operationId": "healthz",
                    "responses": {
                        "200": {
                            "description": "The server is up",
                            "content": {"application/json": {"schema": {
                                "type": "object",
                                "required": ["status"],
                                "properties": {"status": {"type": "string", "enum": ["ok"]}}
                            }}}
                        }
                    }
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics (text format 0.0.4)",
                    "operationId": "metrics",
                    "responses": {
                        "200": {
                            "description": "Request counters and analysis gauges",
                            "content": {"text/plain": {"schema": {"type": "string"}}}
                        }
                    }
                }
            },
            "/v1/identities": {
                "get": {
                    "summary": "Every identity of the last analysis",
                    "description": "Sorted by number of findings, descending, then by subject.",
                    "operationId": "listIdentities",
                    "responses": {
                        "200": {
                            "description": "The run and its identities",
                            "content": {"application/json": {"schema": {
                                "type": "object",
                                "required": ["run", "identities"],
                                "properties": {
                                    "run": {"$ref": "#/components/schemas/RunInfo"},
                                    "identities": {"type": "array", "items": {"$ref": "#/components/schemas/IdentitySummary"}}
                                }
                            }}}
                        },
                        "400": {"$ref": "#/components/responses/BadRequest"},
                        "503": {"$ref": "#/components/responses/NotAnalyzed"},
                        "500": {"$ref": "#/components/responses/Internal"}
                    }
                }
            },
            "/v1/identities/{subject}": {
                "get": {
                    "summary": "One identity with its baseline, findings and suggestions",
                    "operationId": "getIdentity",
                    "parameters": [{
                        "name": "subject",
                        "in": "path",
                        "required": true,
                        "description": "The subject, percent-encoded as one path segment \
                            (`spiffe://cluster.local/ns/a/sa/b` is \
                            `spiffe%3A%2F%2Fcluster.local%2Fns%2Fa%2Fsa%2Fb`).",
                        "schema": {"type": "string"}
                    }],
                    "responses": {
                        "200": {
                            "description": "The identity",
                            "content": {"application/json": {"schema": {
                                "type": "object",
                                "required": ["identity", "baseline", "findings", "suggestions"],
                                "properties": {
                                    "identity": {"$ref": "#/components/schemas/IdentitySummary"},
                                    "baseline": {"type": "array", "items": {"$ref": "#/components/schemas/BaselineEntry"}},
                                    "findings": {"type": "array", "items": {"$ref": "#/components/schemas/Finding"}},
                                    "suggestions": {"type": "array", "items": {"$ref": "#/components/schemas/Suggestion"}}
                                }
                            }}}
                        },
                        "400": {"$ref": "#/components/responses/BadRequest"},
                        "404": {"$ref": "#/components/responses/NotFound"},
                        "503": {"$ref": "#/components/responses/NotAnalyzed"},
                        "500": {"$ref": "#/components/responses/Internal"}
                    }
                }
            },
            "/v1/findings": {
                "get": {
                    "summary": "Findings of the last analysis, filtered",
                    "description": "Sorted by score, descending, then last seen, descending. \
                        Unknown parameters are rejected; an empty value does not filter.",
                    "operationId": "listFindings",
                    "parameters": [
                        {
                            "name": "subject", "in": "query", "required": false,
                            "description": "Only findings of this subject (exact match).",
                            "schema": {"type": "string"}
                        },
                        {
                            "name": "kind", "in": "query", "required": false,
                            "description": "Only findings of this kind.",
                            "schema": {"type": "string", "enum": FINDING_KINDS}
                        },
                        {
                            "name": "since", "in": "query", "required": false,
                            "description": "Only findings last seen at or after this RFC 3339 time.",
                            "schema": {"type": "string", "format": "date-time", "example": SINCE_EXAMPLE}
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "Matching findings",
                            "content": {"application/json": {"schema": {
                                "type": "object",
                                "required": ["findings", "count"],
                                "properties": {
                                    "findings": {"type": "array", "items": {"$ref": "#/components/schemas/Finding"}},
                                    "count": {"type": "integer", "minimum": 0}
                                }
                            }}}
                        },
                        "400": {"$ref": "#/components/responses/BadRequest"},
                        "503": {"$ref": "#/components/responses/NotAnalyzed"},
                        "500": {"$ref": "#/components/responses/Internal"}
                    }
                }
            },
            "/v1/recommendations": {
                "get": {
                    "summary": "Least-privilege suggestions of the last analysis",
                    "description": "Riskiest first, then by confidence, descending.",
                    "operationId": "listRecommendations",
                    "parameters": [{
                        "name": "subject", "in": "query", "required": false,
                        "description": "Only suggestions for this subject (exact match).",
                        "schema": {"type": "string"}
                    }],
                    "responses": {
                        "200": {
                            "description": "Matching suggestions",
                            "content": {"application/json": {"schema": {
                                "type": "object",
                                "required": ["recommendations", "count"],
                                "properties": {
                                    "recommendations": {"type": "array", "items": {"$ref": "#/components/schemas/Suggestion"}},
                                    "count": {"type": "integer", "minimum": 0}
                                }
                            }}}
                        },
                        "400": {"$ref": "#/components/responses/BadRequest"},
                        "503": {"$ref": "#/components/responses/NotAnalyzed"},
                        "500": {"$ref": "#/components/responses/Internal"}
                    }
                }
            },
            "/v1/reports/weekly": {
                "get": {
                    "summary": "The weekly right-sizing report",
                    "description": "As `overreach report` stored it under DIR/reports/weekly/: per identity \
                        granted against used and a creep score (unused share of judged grants, 0-100), \
                        suggestions ranked by risk and confidence, what changed since the previous \
                        week, and the identities with the most unused sensitive grants.",
                    "operationId": "weeklyReport",
                    "parameters": [
                        {
                            "name": "week", "in": "query", "required": false,
                            "description": "ISO week YYYY-Www; default: the latest stored.",
                            "schema": {"type": "string", "pattern": "^[0-9]{4}-?[Ww][0-9]{2}$", "example": "2026-W48"}
                        },
                        {
                            "name": "format", "in": "query", "required": false,
                            "description": "json (default), html (a self-contained page with charts), md or csv.",
                            "schema": {"type": "string", "enum": ["json", "html", "md", "markdown", "csv"]}
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The report",
                            "content": {
                                "application/json": {"schema": {"type": "object", "required": ["week", "totals", "identities", "suggestions", "changes"]}},
                                "text/html": {},
                                "text/markdown": {},
                                "text/csv": {}
                            }
                        },
                        "400": {"$ref": "#/components/responses/BadRequest"},
                        "404": {"$ref": "#/components/responses/NotFound"},
                        "500": {"$ref": "#/components/responses/Internal"}
                    }
                }
            },
            "/v1/openapi.json": {
                "get": {
                    "summary": "This document",
                    "operationId": "openapi",
                    "responses": {
                        "200": {"description": "The OpenAPI document", "content": {"application/json": {}}}
                    }
                }
            }
        },
        "components": {
            "responses": {
                "BadRequest": error_response("A parameter is invalid or unknown", "bad_request"),
                "NotFound": error_response("No such identity, or no such route", "not_found"),
                "NotAnalyzed": error_response(
                    "`overreach analyze` has not written results yet",
                    "not_analyzed"
                ),
                "Internal": error_response("Internal error; details are in the server log", "internal")
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {
                                    "type": "string",
                                    "enum": ["bad_request", "not_found", "method_not_allowed", "not_analyzed", "internal"]
                                },
                                "message": {"type": "string", "description": "For people; not stable."}
                            }
                        }
                    }
                },
                "RunInfo": {
                    "type": "object",
                    "description": "What the last analysis covered.",
                    "required": ["now", "baseline_start", "detect_start", "observe_start", "baseline",
                                 "detect", "observe", "events", "identities", "findings", "suggestions"],
                    "properties": {
                        "now": time("End of the detection window"),
                        "baseline_start": time("Start of the baseline window"),
                        "detect_start": time("Start of the detection window (end of the baseline window)"),
                        "observe_start": time("Start of the right-sizing observation window"),
                        "baseline": {"type": "string", "description": "Baseline window length, e.g. `28d`"},
                        "detect": {"type": "string", "description": "Detection window length, e.g. `1d`"},
                        "observe": {"type": "string", "description": "Observation window length, e.g. `90d`"},
                        "events": {"type": "integer"},
                        "identities": {"type": "integer"},
                        "findings": {"type": "integer"},
                        "suggestions": {"type": "integer"},
                        "grants_file": {"type": "string", "nullable": true}
                    }
                },
                "IdentitySummary": {
                    "type": "object",
                    "required": ["subject", "subject_kind", "events", "allow_count", "deny_count",
                                 "first_seen", "last_seen", "baseline_keys", "findings", "suggestions"],
                    "properties": {
                        "subject": {"type": "string"},
                        "subject_kind": {"type": "string", "example": "spiffe"},
                        "trust_domain": {"type": "string", "nullable": true},
                        "events": {"type": "integer"},
                        "allow_count": {"type": "integer"},
                        "deny_count": {"type": "integer"},
                        "first_seen": time("First event of the subject"),
                        "last_seen": time("Last event of the subject"),
                        "baseline_keys": {"type": "integer", "description": "Reach keys in the baseline window"},
                        "findings": {"type": "integer"},
                        "suggestions": {"type": "integer"}
                    }
                },
                "BaselineEntry": {
                    "type": "object",
                    "description": "One reach key of a subject's baseline.",
                    "required": ["subject", "action", "resource_pattern", "count", "allow_count",
                                 "deny_count", "first_seen", "last_seen"],
                    "properties": {
                        "subject": {"type": "string"},
                        "action": {"type": "string"},
                        "resource_pattern": {"type": "string"},
                        "target": {"type": "string", "nullable": true},
                        "count": {"type": "integer"},
                        "allow_count": {"type": "integer"},
                        "deny_count": {"type": "integer"},
                        "first_seen": time("First use in the baseline window"),
                        "last_seen": time("Last use in the baseline window")
                    }
                },
                "Finding": {
                    "type": "object",
                    "required": ["id", "kind", "subject", "first_seen", "last_seen", "count",
                                 "allow_count", "deny_count", "severity", "score", "explanation",
                                 "evidence", "sample_event_ids", "controls"],
                    "properties": {
                        "id": {"type": "string", "description": "Stable across re-runs"},
                        "kind": {"type": "string", "enum": FINDING_KINDS},
                        "subject": {"type": "string"},
                        "action": {"type": "string", "nullable": true},
                        "resource_pattern": {"type": "string", "nullable": true},
                        "target": {"type": "string", "nullable": true},
                        "first_seen": time("First event of the finding"),
                        "last_seen": time("Last event of the finding"),
                        "count": {"type": "integer"},
                        "allow_count": {"type": "integer"},
                        "deny_count": {"type": "integer"},
                        "severity": {"type": "string", "enum": ["low", "medium", "high", "critical"]},
                        "score": {"type": "integer", "minimum": 0, "maximum": 100},
                        "explanation": {"type": "string"},
                        "evidence": {"type": "string", "description": "The numbers behind the finding, a JSON object encoded as a string"},
                        "sample_event_ids": {"type": "array", "items": {"type": "string"}},
                        "controls": {"type": "array", "items": {"type": "string"}}
                    }
                },
                "Suggestion": {
                    "type": "object",
                    "required": ["id", "kind", "subject", "replacement", "used_count", "window_start",
                                 "window_end", "confidence", "risk", "explanation"],
                    "properties": {
                        "id": {"type": "string"},
                        "kind": {"type": "string", "enum": ["remove-unused", "narrow-wildcard", "minimal-policy"]},
                        "subject": {"type": "string"},
                        "grant": {"type": "string", "nullable": true, "description": "The grant concerned, `action resource`"},
                        "replacement": {"type": "array", "items": {"type": "string"}, "description": "What to grant instead; empty to remove"},
                        "used_count": {"type": "integer"},
                        "last_used": {"type": "string", "format": "date-time", "nullable": true},
                        "window_start": time("Start of the observation window"),
                        "window_end": time("End of the observation window"),
                        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                        "risk": {"type": "string", "enum": ["low", "medium", "high"]},
                        "explanation": {"type": "string"},
                        "policy": {"type": "string", "nullable": true, "description": "The suggested policy (grants-file YAML)"}
                    }
                }
            }
        }
    })
}

fn time(description: &str) -> Value {
    json!({"type": "string", "format": "date-time", "description": description})
}

fn error_response(description: &str, code: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Error"},
            "example": {"error": {"code": code, "message": "..."}}
        }}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ref_resolves() {
        let doc = document();
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(!refs.is_empty());
        for r in refs {
            let pointer = r.strip_prefix('#').expect("local ref");
            assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
        }
    }

    fn collect_refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r.clone()),
                        _ => collect_refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }
}
