//! Pagination of one REST query: which request comes after a page, and the stop rules.
//!
//! Every style stops on an empty page and after `max_pages`; each adds its own rule: no
//! next cursor or URL, a cursor or URL seen before, or the reported total reached; cursor
//! and next_url also stop where the answer says it is the last page ([`Ends`]). A short
//! page is *not* a stop rule: servers cap page sizes below what was asked and hide
//! records after paging, so only an empty page proves the end. The cost is one extra
//! request when the last page is exactly full, unless the API says so itself. Hitting
//! `max_pages` (or a repeated cursor) is a warning the answer carries, never a silent
//! truncation.

use std::collections::HashSet;

use serde_json::Value;

use super::json_path::JsonPath;

/// Where a paging parameter goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamIn {
    /// The URL's query string.
    Query,
    /// A field of the JSON body, at a dotted path.
    Body,
}

/// How an API hands out its pages.
#[derive(Debug, Clone, PartialEq)]
pub enum Pagination {
    /// One request answers everything.
    None,
    /// A token from each answer goes into the next request.
    Cursor {
        cursor_path: JsonPath,
        param: String,
        location: ParamIn,
    },
    /// `offset` advances by the records received, `limit` stays.
    Offset {
        offset_param: String,
        limit_param: String,
        limit: u64,
        start: u64,
        total_path: Option<JsonPath>,
        location: ParamIn,
    },
    /// Page numbers from `start`.
    Page {
        page_param: String,
        start: u64,
        page_size_param: Option<String>,
        page_size: Option<u64>,
        total_path: Option<JsonPath>,
        total_pages_path: Option<JsonPath>,
        location: ParamIn,
    },
    /// A field holding the next page's URL, followed as given.
    NextUrl { next_path: JsonPath },
    /// RFC 8288 `Link: <...>; rel="next"`.
    LinkHeader,
}

impl Pagination {
    /// Where this style's parameters go (URL-following styles have none).
    pub fn location(&self) -> ParamIn {
        match self {
            Pagination::Cursor { location, .. }
            | Pagination::Offset { location, .. }
            | Pagination::Page { location, .. } => *location,
            _ => ParamIn::Query,
        }
    }

    /// The parameter names this style sets, to keep them apart from the query's own.
    pub fn params(&self) -> Vec<&str> {
        match self {
            Pagination::Cursor { param, .. } => vec![param],
            Pagination::Offset {
                offset_param,
                limit_param,
                ..
            } => vec![offset_param, limit_param],
            Pagination::Page {
                page_param,
                page_size_param,
                ..
            } => std::iter::once(page_param.as_str())
                .chain(page_size_param.as_deref())
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// A query's pagination and its page limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Paging {
    pub pagination: Pagination,
    pub max_pages: u32,
    pub ends: Ends,
}

/// Booleans in an answer that say it is the last page (Stripe's `has_more`, Zendesk's
/// `end_of_stream`), for APIs that keep handing out a cursor or URL after the end.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ends {
    /// True while more pages follow.
    pub has_more: Option<JsonPath>,
    /// True on the last page.
    pub end: Option<JsonPath>,
}

impl Ends {
    /// Whether `body` says it is the last page. Absent or null says nothing; any other
    /// value than a boolean is a malformed answer.
    fn last_page(&self, body: &Value) -> Result<bool, String> {
        let flag = |path: &Option<JsonPath>| match path.as_ref().and_then(|p| p.get(body)) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(*flag)),
            Some(other) => Err(format!(
                "`{}` is {}, not true or false",
                path.as_ref().expect("a value was read at it"),
                super::json_path::kind_of(other)
            )),
        };
        Ok(flag(&self.has_more)? == Some(false) || flag(&self.end)? == Some(true))
    }
}

/// What the next request changes relative to the rendered one.
#[derive(Debug, Clone, PartialEq)]
pub enum PageRequest {
    /// The rendered request with these parameters set (in the query or the body).
    Params(Vec<(String, Value)>),
    /// A URL the API gave, to be requested as given.
    Url(String),
}

/// What the pager needs to know about the page just received.
pub struct PageInfo<'a> {
    /// Records on the page.
    pub records: usize,
    /// The whole answer, for cursors, totals and next URLs.
    pub body: &'a Value,
    /// The `Link` header, if any.
    pub link: Option<&'a str>,
}

/// After a page: fetch another, or stop (with a warning when data was left behind).
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    Fetch(PageRequest),
    Done,
    Truncated(String),
}

/// Walks the pages of one query.
pub struct Pager<'a> {
    paging: &'a Paging,
    pages: u32,
    records: u64,
    /// The current offset or page number.
    position: u64,
    seen: HashSet<String>,
}

impl<'a> Pager<'a> {
    pub fn new(paging: &'a Paging) -> Pager<'a> {
        let position = match &paging.pagination {
            Pagination::Offset { start, .. } | Pagination::Page { start, .. } => *start,
            _ => 0,
        };
        Pager {
            paging,
            pages: 0,
            records: 0,
            position,
            seen: HashSet::new(),
        }
    }

    /// Pages received so far.
    pub fn pages(&self) -> u32 {
        self.pages
    }

    /// The parameters of the first request.
    pub fn first(&self) -> PageRequest {
        PageRequest::Params(self.position_params())
    }

    fn position_params(&self) -> Vec<(String, Value)> {
        match &self.paging.pagination {
            Pagination::Offset {
                offset_param,
                limit_param,
                limit,
                ..
            } => vec![
                (offset_param.clone(), Value::from(self.position)),
                (limit_param.clone(), Value::from(*limit)),
            ],
            Pagination::Page {
                page_param,
                page_size_param,
                page_size,
                ..
            } => {
                let mut params = vec![(page_param.clone(), Value::from(self.position))];
                if let (Some(name), Some(size)) = (page_size_param, page_size) {
                    params.push((name.clone(), Value::from(*size)));
                }
                params
            }
            _ => Vec::new(),
        }
    }

    /// Decides what follows `page`. An `Err` names what in the answer is malformed.
    pub fn advance(&mut self, page: &PageInfo<'_>) -> Result<Next, String> {
        self.pages += 1;
        self.records += page.records as u64;
        if page.records == 0 || self.paging.ends.last_page(page.body)? {
            return Ok(Next::Done);
        }
        let next = match &self.paging.pagination {
            Pagination::None => return Ok(Next::Done),
            Pagination::Cursor {
                cursor_path, param, ..
            } => {
                let cursor = match cursor_path.get(page.body) {
                    None | Some(Value::Null) => return Ok(Next::Done),
                    Some(Value::String(text)) if text.is_empty() => return Ok(Next::Done),
                    Some(value @ (Value::String(_) | Value::Number(_))) => value.clone(),
                    Some(other) => {
                        return Err(format!(
                            "the cursor at `{cursor_path}` is {}, not a string or number",
                            super::json_path::kind_of(other)
                        ))
                    }
                };
                if !self.seen.insert(cursor.to_string()) {
                    return Ok(self.looped("a cursor"));
                }
                Next::Fetch(PageRequest::Params(vec![(param.clone(), cursor)]))
            }
            Pagination::Offset { total_path, .. } => {
                let total = read_total(total_path.as_ref(), page.body)?;
                if total.is_some_and(|total| self.records >= total) {
                    return Ok(Next::Done);
                }
                // By what arrived, not by `limit`: a server that caps its page size below
                // the limit asked for would otherwise have records skipped.
                self.position += page.records as u64;
                Next::Fetch(PageRequest::Params(self.position_params()))
            }
            Pagination::Page {
                total_path,
                total_pages_path,
                ..
            } => {
                let total = read_total(total_path.as_ref(), page.body)?;
                if total.is_some_and(|total| self.records >= total) {
                    return Ok(Next::Done);
                }
                let total_pages = read_total(total_pages_path.as_ref(), page.body)?;
                if total_pages.is_some_and(|pages| u64::from(self.pages) >= pages) {
                    return Ok(Next::Done);
                }
                self.position += 1;
                Next::Fetch(PageRequest::Params(self.position_params()))
            }
            Pagination::NextUrl { next_path } => match next_path.get(page.body) {
                None | Some(Value::Null) => return Ok(Next::Done),
                Some(Value::String(url)) if url.trim().is_empty() => return Ok(Next::Done),
                Some(Value::String(url)) => self.follow(url),
                Some(other) => {
                    return Err(format!(
                        "the next page URL at `{next_path}` is {}, not a string",
                        super::json_path::kind_of(other)
                    ))
                }
            },
            Pagination::LinkHeader => match page.link.and_then(link_next) {
                None => return Ok(Next::Done),
                Some(url) => self.follow(&url),
            },
        };
        if matches!(next, Next::Fetch(_)) && self.pages >= self.paging.max_pages {
            return Ok(Next::Truncated(format!(
                "stopped after {} pages (pagination.max_pages) although the API offered more: the numbers are incomplete; raise max_pages or narrow the request",
                self.paging.max_pages
            )));
        }
        Ok(next)
    }

    fn follow(&mut self, url: &str) -> Next {
        if self.seen.insert(url.to_owned()) {
            Next::Fetch(PageRequest::Url(url.to_owned()))
        } else {
            self.looped("a next page URL")
        }
    }

    /// The API handed out something it had handed out before: following it would loop.
    fn looped(&self, what: &str) -> Next {
        Next::Truncated(format!(
            "after {} pages the API sent {what} it had sent before; paging stopped there to avoid a loop, so the numbers may be incomplete",
            self.pages
        ))
    }
}

/// A count the API reports, when the path is declared and present.
fn read_total(path: Option<&JsonPath>, body: &Value) -> Result<Option<u64>, String> {
    let Some(path) = path else {
        return Ok(None);
    };
    match path.get(body) {
        // Many APIs report totals on the first page only.
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64()),
        Some(Value::String(text)) if text.trim().parse::<u64>().is_ok() => {
            Ok(text.trim().parse().ok())
        }
        Some(other) => Err(format!(
            "the total at `{path}` is {}, not a whole number",
            super::json_path::kind_of(other)
        )),
    }
}

/// The target of the first `rel="next"` link of an RFC 8288 `Link` header.
pub fn link_next(header: &str) -> Option<String> {
    let mut rest = header;
    loop {
        let open = rest.find('<')?;
        let close = open + rest[open..].find('>')?;
        let target = &rest[open + 1..close];
        rest = &rest[close + 1..];
        // The parameters run to the next comma outside quotes.
        let mut end = rest.len();
        let mut quoted = false;
        for (i, c) in rest.char_indices() {
            match c {
                '"' => quoted = !quoted,
                ',' if !quoted => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let params = &rest[..end];
        rest = &rest[end..];
        let is_next = params.split(';').any(|param| {
            let Some((name, value)) = param.split_once('=') else {
                return false;
            };
            name.trim().eq_ignore_ascii_case("rel")
                && value
                    .trim()
                    .trim_matches('"')
                    .split_ascii_whitespace()
                    .any(|rel| rel.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(target.trim().to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(text: &str) -> JsonPath {
        JsonPath::parse(text).unwrap()
    }

    fn page<'a>(records: usize, body: &'a Value) -> PageInfo<'a> {
        PageInfo {
            records,
            body,
            link: None,
        }
    }

    fn cursor(max_pages: u32) -> Paging {
        Paging {
            pagination: Pagination::Cursor {
                cursor_path: path("next"),
                param: "after".into(),
                location: ParamIn::Query,
            },
            max_pages,
            ends: Ends::default(),
        }
    }

    fn fetch(params: &[(&str, Value)]) -> Next {
        Next::Fetch(PageRequest::Params(
            params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        ))
    }

    #[test]
    fn has_more_and_end_of_stream_stop_a_cursor_that_keeps_coming() {
        // Stripe: the cursor is the last record's id, so it never runs out by itself.
        let mut paging = cursor(100);
        paging.pagination = Pagination::Cursor {
            cursor_path: path("data.-1.id"),
            param: "starting_after".into(),
            location: ParamIn::Query,
        };
        paging.ends.has_more = Some(path("has_more"));
        let body =
            |more: Value| json!({"has_more": more, "data": [{"id": "ch_1"}, {"id": "ch_2"}]});
        let mut pager = Pager::new(&paging);
        assert_eq!(
            pager.advance(&page(2, &body(json!(true)))).unwrap(),
            fetch(&[("starting_after", json!("ch_2"))])
        );
        assert_eq!(
            pager.advance(&page(2, &body(json!(false)))).unwrap(),
            Next::Done
        );
        // Absent or null says nothing, so the cursor decides; a string is malformed.
        let mut pager = Pager::new(&paging);
        assert!(matches!(
            pager.advance(&page(2, &body(Value::Null))).unwrap(),
            Next::Fetch(_)
        ));
        let err = pager.advance(&page(2, &body(json!("no")))).unwrap_err();
        assert!(err.contains("`has_more` is a string"), "{err}");

        // Zendesk's incremental export: an after_cursor still comes on the last page.
        paging.ends = Ends {
            has_more: None,
            end: Some(path("end_of_stream")),
        };
        paging.pagination = Pagination::Cursor {
            cursor_path: path("after_cursor"),
            param: "cursor".into(),
            location: ParamIn::Query,
        };
        let mut pager = Pager::new(&paging);
        let last = json!({"after_cursor": "c2", "end_of_stream": true});
        assert_eq!(pager.advance(&page(5, &last)).unwrap(), Next::Done);
    }

    #[test]
    fn cursor_follows_tokens_until_none_empty_or_null() {
        let paging = cursor(100);
        let mut pager = Pager::new(&paging);
        assert_eq!(pager.first(), PageRequest::Params(vec![]));
        assert_eq!(
            pager.advance(&page(2, &json!({"next": "c1"}))).unwrap(),
            fetch(&[("after", json!("c1"))])
        );
        assert_eq!(
            pager.advance(&page(2, &json!({"next": 7}))).unwrap(),
            fetch(&[("after", json!(7))])
        );
        for last in [json!({}), json!({"next": null}), json!({"next": ""})] {
            let mut pager = Pager::new(&paging);
            assert_eq!(
                pager.advance(&page(2, &last)).unwrap(),
                Next::Done,
                "{last}"
            );
        }
        // An empty page ends paging even when a token comes with it.
        let mut pager = Pager::new(&paging);
        assert_eq!(
            pager.advance(&page(0, &json!({"next": "c9"}))).unwrap(),
            Next::Done
        );
        let mut pager = Pager::new(&paging);
        assert!(pager
            .advance(&page(1, &json!({"next": {"a": 1}})))
            .unwrap_err()
            .contains("`next` is an object"));
    }

    #[test]
    fn a_repeated_cursor_stops_with_a_warning() {
        let paging = cursor(100);
        let mut pager = Pager::new(&paging);
        pager.advance(&page(1, &json!({"next": "same"}))).unwrap();
        let next = pager.advance(&page(1, &json!({"next": "same"}))).unwrap();
        assert!(
            matches!(&next, Next::Truncated(w) if w.contains("a cursor it had sent before")),
            "{next:?}"
        );
    }

    #[test]
    fn max_pages_warns_only_when_more_was_offered() {
        let paging = cursor(3);
        let mut pager = Pager::new(&paging);
        for n in 1..3 {
            let body = json!({ "next": format!("c{n}") });
            assert!(matches!(
                pager.advance(&page(5, &body)).unwrap(),
                Next::Fetch(_)
            ));
        }
        let next = pager.advance(&page(5, &json!({"next": "c3"}))).unwrap();
        assert!(
            matches!(&next, Next::Truncated(w) if w.contains("max_pages")),
            "{next:?}"
        );

        // The third page was the last one anyway: no warning.
        let mut pager = Pager::new(&paging);
        pager.advance(&page(5, &json!({"next": "c1"}))).unwrap();
        pager.advance(&page(5, &json!({"next": "c2"}))).unwrap();
        assert_eq!(pager.advance(&page(5, &json!({}))).unwrap(), Next::Done);
    }

    fn offset(total: bool) -> Paging {
        Paging {
            pagination: Pagination::Offset {
                offset_param: "offset".into(),
                limit_param: "limit".into(),
                limit: 10,
                start: 0,
                total_path: total.then(|| path("total")),
                location: ParamIn::Query,
            },
            max_pages: 100,
            ends: Ends::default(),
        }
    }

    #[test]
    fn offset_continues_past_full_and_short_pages_until_an_empty_one() {
        let paging = offset(false);
        let mut pager = Pager::new(&paging);
        assert_eq!(
            pager.first(),
            PageRequest::Params(vec![
                ("offset".into(), json!(0)),
                ("limit".into(), json!(10))
            ])
        );
        let body = json!({});
        // A full page, then a short one that is not the last (the server caps at 7).
        assert_eq!(
            pager.advance(&page(10, &body)).unwrap(),
            fetch(&[("offset", json!(10)), ("limit", json!(10))])
        );
        assert_eq!(
            pager.advance(&page(7, &body)).unwrap(),
            fetch(&[("offset", json!(17)), ("limit", json!(10))])
        );
        assert_eq!(pager.advance(&page(0, &body)).unwrap(), Next::Done);
    }

    #[test]
    fn offset_stops_when_the_reported_total_is_reached() {
        let paging = offset(true);
        let mut pager = Pager::new(&paging);
        let body = json!({"total": "20"});
        assert!(matches!(
            pager.advance(&page(10, &body)).unwrap(),
            Next::Fetch(_)
        ));
        // Exactly full last page: the total saves the extra request.
        assert_eq!(pager.advance(&page(10, &body)).unwrap(), Next::Done);
        let mut pager = Pager::new(&paging);
        assert!(pager
            .advance(&page(10, &json!({"total": "many"})))
            .unwrap_err()
            .contains("`total`"));
    }

    #[test]
    fn page_numbers_stop_on_total_pages_or_total_records() {
        let paging = Paging {
            pagination: Pagination::Page {
                page_param: "page".into(),
                start: 1,
                page_size_param: Some("per_page".into()),
                page_size: Some(10),
                total_path: Some(path("meta.total")),
                total_pages_path: Some(path("meta.pages")),
                location: ParamIn::Body,
            },
            max_pages: 100,
            ends: Ends::default(),
        };
        let mut pager = Pager::new(&paging);
        assert_eq!(
            pager.first(),
            PageRequest::Params(vec![
                ("page".into(), json!(1)),
                ("per_page".into(), json!(10))
            ])
        );
        let body = json!({"meta": {"pages": 3}});
        // A short page in the middle does not end it.
        assert_eq!(
            pager.advance(&page(4, &body)).unwrap(),
            fetch(&[("page", json!(2)), ("per_page", json!(10))])
        );
        assert!(matches!(
            pager.advance(&page(10, &body)).unwrap(),
            Next::Fetch(_)
        ));
        assert_eq!(pager.advance(&page(10, &body)).unwrap(), Next::Done);

        let mut pager = Pager::new(&paging);
        assert_eq!(
            pager
                .advance(&page(10, &json!({"meta": {"total": 10}})))
                .unwrap(),
            Next::Done
        );
    }

    #[test]
    fn next_urls_are_followed_until_absent_and_loops_stop_with_a_warning() {
        let paging = Paging {
            pagination: Pagination::NextUrl {
                next_path: path("links.next"),
            },
            max_pages: 100,
            ends: Ends::default(),
        };
        let mut pager = Pager::new(&paging);
        let body = json!({"links": {"next": "/items?page=2"}});
        assert_eq!(
            pager.advance(&page(3, &body)).unwrap(),
            Next::Fetch(PageRequest::Url("/items?page=2".into()))
        );
        assert!(matches!(
            pager.advance(&page(3, &body)).unwrap(),
            Next::Truncated(_)
        ));
        assert_eq!(
            pager
                .advance(&page(3, &json!({"links": {"next": null}})))
                .unwrap(),
            Next::Done
        );
    }

    #[test]
    fn link_headers_yield_the_next_target() {
        let paging = Paging {
            pagination: Pagination::LinkHeader,
            max_pages: 100,
            ends: Ends::default(),
        };
        let mut pager = Pager::new(&paging);
        let body = json!([]);
        let link = r#"<https://api.example.com/items?page=1>; rel="first", <https://api.example.com/items?page=3>; rel="next last""#;
        let info = PageInfo {
            records: 2,
            body: &body,
            link: Some(link),
        };
        assert_eq!(
            pager.advance(&info).unwrap(),
            Next::Fetch(PageRequest::Url(
                "https://api.example.com/items?page=3".into()
            ))
        );
        assert_eq!(link_next("<a>; rel=prev, <b>; REL=next"), Some("b".into()));
        assert_eq!(
            link_next(r#"<a>; title="x, y"; rel="next""#),
            Some("a".into())
        );
        assert_eq!(link_next(r#"<a>; rel="prev""#), None);
        assert_eq!(link_next(""), None);
    }
}
