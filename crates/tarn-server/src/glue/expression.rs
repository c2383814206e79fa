//! Glue's partition filter (`GetPartitions`' `Expression`): comparisons (`=`, `<>`, `!=`,
//! `<`, `<=`, `>`, `>=`), `LIKE`, `IN (...)`, `BETWEEN a AND b`, `IS [NOT] NULL`, each of
//! them negatable with `NOT`, joined by `AND` and `OR` (AND binds tighter) and parenthesised.
//! Values compare by the partition key's type: integers as numbers, `date` and `timestamp` as
//! dates, anything else as text, as Glue and moto do.

use std::cmp::Ordering;

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Compare(String, Op, Literal),
    Like(String, String),
    In(String, Vec<Literal>),
    Between(String, Literal, Literal),
    IsNull(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A literal as written: quoted text or a number.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Text(String),
    Number(String),
}

impl Literal {
    fn text(&self) -> &str {
        match self {
            Literal::Text(t) | Literal::Number(t) => t,
        }
    }
}

/// Longest expression taken (Glue's own limit on `Expression` is 2,048 characters).
pub(crate) const MAX_EXPRESSION: usize = 2048;

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Number(String),
    Op(Op),
    Open,
    Close,
    Comma,
}

fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Token::Open);
                i += 1
            }
            ')' => {
                out.push(Token::Close);
                i += 1
            }
            ',' => {
                out.push(Token::Comma);
                i += 1
            }
            '\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(format!(
                                "the text starting at character {} has no closing quote",
                                out.len() + 1
                            ))
                        }
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            s.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(&c) => {
                            s.push(c);
                            i += 1;
                        }
                    }
                }
                out.push(Token::Text(s));
            }
            '=' => {
                out.push(Token::Op(Op::Eq));
                i += 1
            }
            '<' | '>' | '!' => {
                let next = chars.get(i + 1).copied();
                let (op, len) = match (c, next) {
                    ('<', Some('=')) => (Op::Le, 2),
                    ('<', Some('>')) => (Op::Ne, 2),
                    ('<', _) => (Op::Lt, 1),
                    ('>', Some('=')) => (Op::Ge, 2),
                    ('>', _) => (Op::Gt, 1),
                    ('!', Some('=')) => (Op::Ne, 2),
                    _ => return Err(format!("`{c}` at character {} is not an operator", i + 1)),
                };
                out.push(Token::Op(op));
                i += len;
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => {
                let start = i;
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric()
                        || chars[i] == '.'
                        || chars[i] == '-'
                        || chars[i] == '+')
                {
                    i += 1;
                }
                let n: String = chars[start..i].iter().collect();
                if n.parse::<f64>().is_err() {
                    return Err(format!("`{n}` at character {} is not a number", start + 1));
                }
                out.push(Token::Number(n));
            }
            c if c.is_alphanumeric() || c == '_' || c == '`' || c == '"' => {
                if c == '`' || c == '"' {
                    let end = chars[i + 1..].iter().position(|&x| x == c).ok_or_else(|| {
                        format!("the name at character {} has no closing {c}", i + 1)
                    })?;
                    out.push(Token::Word(chars[i + 1..i + 1 + end].iter().collect()));
                    i += end + 2;
                    continue;
                }
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.')
                {
                    i += 1;
                }
                out.push(Token::Word(chars[start..i].iter().collect()));
            }
            other => {
                return Err(format!(
                    "`{other}` at character {} is not part of Glue's filter syntax",
                    i + 1
                ))
            }
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
}

/// Deepest nesting of parentheses and NOTs taken.
const MAX_DEPTH: usize = 64;

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn take_keyword(&mut self, word: &str) -> bool {
        let yes = self.keyword(word);
        if yes {
            self.at += 1;
        }
        yes
    }

    fn expect(&mut self, token: Token, what: &str) -> Result<(), String> {
        if self.peek() == Some(&token) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!("expected {what} {}", self.place()))
        }
    }

    fn place(&self) -> String {
        match self.peek() {
            None => "at the end".into(),
            Some(t) => format!("at {}", describe(t)),
        }
    }

    fn or(&mut self) -> Result<Filter, String> {
        let mut left = self.and()?;
        while self.take_keyword("or") {
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, String> {
        let mut left = self.unary()?;
        while self.take_keyword("and") {
            left = Filter::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("the filter nests deeper than {MAX_DEPTH} levels"));
        }
        let out = if self.take_keyword("not") {
            Filter::Not(Box::new(self.unary()?))
        } else if self.peek() == Some(&Token::Open) {
            self.at += 1;
            let inner = self.or()?;
            self.expect(Token::Close, "`)`")?;
            inner
        } else {
            self.condition()?
        };
        self.depth -= 1;
        Ok(out)
    }

    fn literal(&mut self) -> Result<Literal, String> {
        match self.peek().cloned() {
            Some(Token::Text(t)) => {
                self.at += 1;
                Ok(Literal::Text(t))
            }
            Some(Token::Number(n)) => {
                self.at += 1;
                Ok(Literal::Number(n))
            }
            _ => Err(format!(
                "expected a value ('text' or a number) {}",
                self.place()
            )),
        }
    }

    fn condition(&mut self) -> Result<Filter, String> {
        let key = match self.peek().cloned() {
            Some(Token::Word(w)) if !is_keyword(&w) => {
                self.at += 1;
                w
            }
            _ => return Err(format!("expected a partition key {}", self.place())),
        };
        let negated = self.take_keyword("not");
        let filter = if self.take_keyword("like") {
            match self.literal()? {
                Literal::Text(p) => Filter::Like(key, p),
                Literal::Number(n) => return Err(format!("LIKE takes a quoted pattern, not {n}")),
            }
        } else if self.take_keyword("in") {
            self.expect(Token::Open, "`(` after IN")?;
            let mut values = vec![self.literal()?];
            while self.peek() == Some(&Token::Comma) {
                self.at += 1;
                values.push(self.literal()?);
            }
            self.expect(Token::Close, "`)` closing IN's list")?;
            Filter::In(key, values)
        } else if self.take_keyword("between") {
            let low = self.literal()?;
            if !self.take_keyword("and") {
                return Err(format!("expected AND in BETWEEN {}", self.place()));
            }
            Filter::Between(key, low, self.literal()?)
        } else if !negated && self.take_keyword("is") {
            let not = self.take_keyword("not");
            if !self.take_keyword("null") {
                return Err(format!("expected NULL after IS {}", self.place()));
            }
            let f = Filter::IsNull(key);
            return Ok(if not { Filter::Not(Box::new(f)) } else { f });
        } else if let (false, Some(Token::Op(op))) = (negated, self.peek().cloned()) {
            self.at += 1;
            Filter::Compare(key, op, self.literal()?)
        } else {
            return Err(format!(
                "expected an operator (=, <>, <, <=, >, >=, LIKE, IN, BETWEEN, IS NULL) after `{key}` {}",
                self.place()
            ));
        };
        Ok(if negated {
            Filter::Not(Box::new(filter))
        } else {
            filter
        })
    }
}

fn is_keyword(w: &str) -> bool {
    ["and", "or", "not", "like", "in", "between", "is", "null"]
        .iter()
        .any(|k| w.eq_ignore_ascii_case(k))
}

fn describe(t: &Token) -> String {
    match t {
        Token::Word(w) => format!("`{w}`"),
        Token::Text(s) => format!("'{s}'"),
        Token::Number(n) => n.clone(),
        Token::Op(op) => format!("`{op:?}`"),
        Token::Open => "`(`".into(),
        Token::Close => "`)`".into(),
        Token::Comma => "`,`".into(),
    }
}

/// Parses a filter; the error says what was expected where.
pub(crate) fn parse(text: &str) -> Result<Filter, String> {
    if text.len() > MAX_EXPRESSION {
        return Err(format!(
            "the expression is {} characters long; Glue takes at most {MAX_EXPRESSION}",
            text.len()
        ));
    }
    let mut p = Parser {
        tokens: tokens(text)?,
        at: 0,
        depth: 0,
    };
    let f = p.or()?;
    if p.at < p.tokens.len() {
        return Err(format!("unexpected {} after a complete filter", p.place()));
    }
    Ok(f)
}

/// A value of a partition key, typed as the key is.
#[derive(Debug, PartialEq, PartialOrd)]
enum Typed {
    Int(i128),
    Decimal(f64),
    Text(String),
}

fn typed(key_type: &str, value: &str) -> Result<Typed, String> {
    let t = key_type.to_ascii_lowercase();
    let base = t.split('(').next().unwrap_or("");
    match base {
        "bigint" | "int" | "integer" | "smallint" | "tinyint" => {
            value.trim().parse::<i128>().map(Typed::Int).map_err(|_| {
                format!("'{value}' is not an integer, which partition keys of type {key_type} hold")
            })
        }
        "decimal" | "double" | "float" => {
            value
                .trim()
                .parse::<f64>()
                .map(Typed::Decimal)
                .map_err(|_| {
                    format!(
                        "'{value}' is not a number, which partition keys of type {key_type} hold"
                    )
                })
        }
        // ISO dates and timestamps order as text.
        _ => Ok(Typed::Text(value.to_string())),
    }
}

fn compare(key_type: &str, value: &str, literal: &Literal) -> Result<Ordering, String> {
    let (a, b) = (typed(key_type, value)?, typed(key_type, literal.text())?);
    a.partial_cmp(&b)
        .ok_or_else(|| format!("'{value}' and '{}' do not compare", literal.text()))
}

/// SQL's LIKE (`%` any run, `_` one character), whole-value.
fn like(value: &str, pattern: &str) -> bool {
    let v: Vec<char> = value.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    // Iterative matching with backtracking to the last `%`.
    let (mut vi, mut pi) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '_' || p[pi] == v[vi]) {
            vi += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some(pi);
            mark = vi;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            vi = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '%' {
        pi += 1;
    }
    pi == p.len()
}

impl Filter {
    /// The keys this filter names, so unknown ones are refused before any partition is read.
    pub(crate) fn keys(&self) -> Vec<&str> {
        match self {
            Filter::And(a, b) | Filter::Or(a, b) => {
                let mut k = a.keys();
                k.extend(b.keys());
                k
            }
            Filter::Not(a) => a.keys(),
            Filter::Compare(k, ..)
            | Filter::Like(k, _)
            | Filter::In(k, _)
            | Filter::Between(k, ..)
            | Filter::IsNull(k) => vec![k.as_str()],
        }
    }

    /// Whether a partition holds: `value(key)` gives its value and the key's type.
    pub(crate) fn holds<'a>(
        &self,
        value: &dyn Fn(&str) -> Option<(&'a str, &'a str)>,
    ) -> Result<bool, String> {
        let get =
            |k: &str| value(k).ok_or_else(|| format!("`{k}` is not a partition key of this table"));
        Ok(match self {
            Filter::And(a, b) => a.holds(value)? && b.holds(value)?,
            Filter::Or(a, b) => a.holds(value)? || b.holds(value)?,
            Filter::Not(a) => !a.holds(value)?,
            Filter::IsNull(k) => {
                let (v, _) = get(k)?;
                v.is_empty() || v == "__HIVE_DEFAULT_PARTITION__"
            }
            Filter::Compare(k, op, lit) => {
                let (v, t) = get(k)?;
                let o = compare(t, v, lit)?;
                match op {
                    Op::Eq => o == Ordering::Equal,
                    Op::Ne => o != Ordering::Equal,
                    Op::Lt => o == Ordering::Less,
                    Op::Le => o != Ordering::Greater,
                    Op::Gt => o == Ordering::Greater,
                    Op::Ge => o != Ordering::Less,
                }
            }
            Filter::Like(k, p) => like(get(k)?.0, p),
            Filter::In(k, list) => {
                let (v, t) = get(k)?;
                let mut any = false;
                for l in list {
                    any |= compare(t, v, l)? == Ordering::Equal;
                }
                any
            }
            Filter::Between(k, lo, hi) => {
                let (v, t) = get(k)?;
                compare(t, v, lo)? != Ordering::Less && compare(t, v, hi)? != Ordering::Greater
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holds(expr: &str, year: &str, month: &str) -> bool {
        let f = parse(expr).unwrap();
        f.holds(&|k: &str| match k {
            "year" => Some((year, "bigint")),
            "month" => Some((month, "string")),
            _ => None,
        })
        .unwrap()
    }

    #[test]
    fn glue_filters_compare_by_the_keys_type() {
        assert!(holds("year = 2013", "2013", "1"));
        assert!(
            holds("year > 999", "2013", "1"),
            "bigint compares as a number"
        );
        assert!(
            !holds("month > '6'", "2013", "12"),
            "string compares as text"
        );
        assert!(holds("year = 2013 and month in ('1', '2')", "2013", "2"));
        assert!(holds(
            "NOT (year < 2013) AND month NOT LIKE '1_'",
            "2013",
            "2"
        ));
        assert!(holds(
            "year between 2010 and 2013 or month = 'x'",
            "2013",
            "2"
        ));
        assert!(holds(
            "year = 1 or year = 2 and month = 'x' or year = 2013",
            "2013",
            "2"
        ));
        assert!(!holds(
            "(year = 1 or year = 2013) and month = 'x'",
            "2013",
            "2"
        ));
        assert!(holds("month LIKE '%2'", "2013", "12"));
        assert!(holds("month is not null", "2013", "12"));
        assert!(holds("month = 'it''s'", "2013", "it's"));
    }

    #[test]
    fn a_bad_filter_says_where() {
        for (bad, says) in [
            ("year =", "expected a value"),
            ("year 2013", "expected an operator"),
            ("(year = 1", "expected `)`"),
            ("year = 'open", "no closing quote"),
            ("year = 1 month = 2", "unexpected at `month`"),
            ("year ; drop", "not part of Glue's filter syntax"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let deep = format!("{}year = 1{}", "(".repeat(500), ")".repeat(500));
        assert!(parse(&deep).unwrap_err().contains("deeper than"));
        let f = parse("day = 1").unwrap();
        let e = f.holds(&|_| None).unwrap_err();
        assert!(e.contains("`day` is not a partition key"), "{e}");
    }
}
