//! The executor: walks parsed trees against data, as Go's `text/template/exec.go`.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{Error, ExecError, FnError};
use crate::fmt::print_value;
use crate::funcs::Func;
use crate::parse::{Arg, Branch, Command, Node, Number, Pipe, Tree, parse};
use crate::set::TemplateSet;
use crate::value::Value;

/// What a walked list asks of the enclosing `range`.
enum Flow {
    Normal,
    Break,
    Continue,
}

/// Variables of one template execution; `$` is the first.
struct State {
    tree: Arc<Tree>,
    vars: Vec<(String, Value)>,
}

/// One rendering: the set, the `tpl` overlays and the recursion guard.
pub(crate) struct Exec<'s> {
    pub(crate) set: &'s TemplateSet,
    /// Templates defined by `tpl` strings being executed; searched before the set,
    /// innermost first, as Helm's `tpl` clones the set.
    overlays: Vec<HashMap<String, Arc<Tree>>>,
    depth: usize,
}

type EResult<T> = Result<T, Error>;

impl<'s> Exec<'s> {
    pub(crate) fn new(set: &'s TemplateSet) -> Self {
        Exec {
            set,
            overlays: Vec::new(),
            depth: 0,
        }
    }

    pub(crate) fn lookup(&self, name: &str) -> Option<Arc<Tree>> {
        for layer in self.overlays.iter().rev() {
            if let Some(t) = layer.get(name) {
                return Some(t.clone());
            }
        }
        self.set.tree(name)
    }

    /// Executes the template `name` with `dot`, for `include` and the set's own API.
    pub(crate) fn execute_named(&mut self, name: &str, dot: Value) -> Result<String, FnError> {
        let Some(tree) = self.lookup(name) else {
            return Err(Error::NoTemplate {
                name: name.to_owned(),
            }
            .into());
        };
        if self.depth >= self.set.max_depth() {
            return Err(FnError::new(format!(
                "rendering template has a nested reference name: {name}: unable to execute template"
            )));
        }
        self.depth += 1;
        let mut out = String::new();
        let result = self.exec_tree(tree, dot, &mut out);
        self.depth -= 1;
        result?;
        Ok(out)
    }

    /// Parses `text` as a template that sees the set's defines (and may add its own for
    /// its execution only) and executes it: Helm's `tpl`.
    pub(crate) fn execute_text(&mut self, text: &str, dot: Value) -> Result<String, FnError> {
        let functions = self.set.functions();
        let trees = parse("gotpl", text, &|n| functions.contains(n)).map_err(|e| {
            let (line, _) = crate::parse::line_col(text, e.pos);
            let inner = Error::Parse {
                template: "gotpl".into(),
                line,
                message: e.message,
            };
            FnError::new(format!("cannot parse template {text:?}: {inner}"))
        })?;
        let mut layer = HashMap::new();
        let mut main = None;
        for (i, tree) in trees.into_iter().enumerate() {
            let tree = Arc::new(tree);
            if i == 0 {
                main = Some(tree);
            } else if !(tree.is_empty() && self.lookup(&tree.name).is_some()) {
                layer.insert(tree.name.clone(), tree);
            }
        }
        let Some(main) = main else {
            return Ok(String::new());
        };
        if self.depth >= self.set.max_depth() {
            return Err(FnError::new(
                "rendering template has a nested reference name: tpl: unable to execute template",
            ));
        }
        self.overlays.push(layer);
        self.depth += 1;
        let mut out = String::new();
        let result = self.exec_tree(main, dot, &mut out);
        self.depth -= 1;
        self.overlays.pop();
        if let Err(e) = result {
            let failure = e.failure().map(str::to_owned);
            return Err(FnError {
                message: format!("error during tpl function execution for {text:?}: {e}"),
                failure,
                bare: false,
            });
        }
        Ok(out.replace("<no value>", ""))
    }

    pub(crate) fn exec_tree(
        &mut self,
        tree: Arc<Tree>,
        dot: Value,
        out: &mut String,
    ) -> EResult<()> {
        let mut st = State {
            tree: tree.clone(),
            vars: vec![("".to_owned(), dot.clone())],
        };
        self.walk(&mut st, &tree.root, &dot, out)?;
        Ok(())
    }

    fn walk(
        &mut self,
        st: &mut State,
        list: &[Node],
        dot: &Value,
        out: &mut String,
    ) -> EResult<Flow> {
        for node in list {
            match node {
                Node::Text(t) => out.push_str(t),
                Node::Action(pipe) => {
                    let v = self.eval_pipeline(st, dot, pipe)?;
                    if pipe.decl.is_empty() {
                        out.push_str(&print_value(&v));
                    }
                }
                Node::If(b) => {
                    let flow = self.walk_if_with(st, b, dot, out, false)?;
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::With(b) => {
                    let flow = self.walk_if_with(st, b, dot, out, true)?;
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::Range(b) => self.walk_range(st, b, dot, out)?,
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
                Node::Template { pos, name, pipe } => {
                    let data = match pipe {
                        Some(p) => self.eval_pipeline(st, dot, p)?,
                        None => Value::Nil,
                    };
                    let context = match pipe {
                        Some(p) => format!("{{{{template {name:?} {p}}}}}"),
                        None => format!("{{{{template {name:?}}}}}"),
                    };
                    let Some(tree) = self.lookup(name) else {
                        return Err(self.error(
                            st,
                            *pos,
                            context,
                            format!("template {name:?} not defined"),
                        ));
                    };
                    if self.depth >= self.set.max_depth() {
                        return Err(self.error(
                            st,
                            *pos,
                            context,
                            "exceeded maximum template depth (1000)",
                        ));
                    }
                    self.depth += 1;
                    let result = self.exec_tree(tree, data, out);
                    self.depth -= 1;
                    result?;
                }
            }
        }
        Ok(Flow::Normal)
    }

    fn walk_if_with(
        &mut self,
        st: &mut State,
        b: &Branch,
        dot: &Value,
        out: &mut String,
        with: bool,
    ) -> EResult<Flow> {
        let mark = st.vars.len();
        let val = self.eval_pipeline(st, dot, &b.pipe)?;
        let flow = if val.is_truthy() {
            let new_dot = if with { val } else { dot.clone() };
            self.walk(st, &b.list, &new_dot, out)?
        } else if let Some(else_list) = &b.else_list {
            self.walk(st, else_list, dot, out)?
        } else {
            Flow::Normal
        };
        st.vars.truncate(mark);
        Ok(flow)
    }

    fn walk_range(
        &mut self,
        st: &mut State,
        b: &Branch,
        dot: &Value,
        out: &mut String,
    ) -> EResult<()> {
        let mark = st.vars.len();
        let val = self.eval_pipeline(st, dot, &b.pipe)?;
        let items: Vec<(Value, Value)> = match val.data() {
            Value::Nil => Vec::new(),
            Value::List(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| (Value::Int(i as i64), v.clone()))
                .collect(),
            Value::Map(m) => m
                .entries()
                .into_iter()
                .map(|(k, v)| (Value::String(k), v))
                .collect(),
            Value::Int(n) => {
                if b.pipe.decl.len() > 1 {
                    return Err(self.error(
                        st,
                        b.pos,
                        b.pipe.to_string(),
                        format!("can't use {n} to iterate over more than one variable"),
                    ));
                }
                (0..n.max(0))
                    .map(|i| (Value::Int(i), Value::Int(i)))
                    .collect()
            }
            other => {
                return Err(self.error(
                    st,
                    b.pos,
                    b.pipe.to_string(),
                    format!("range can't iterate over {}", print_value(&other)),
                ));
            }
        };
        if items.is_empty() {
            if let Some(else_list) = &b.else_list {
                self.walk(st, else_list, dot, out)?;
            }
            st.vars.truncate(mark);
            return Ok(());
        }
        let inner_mark = st.vars.len();
        for (key, elem) in items {
            match (b.pipe.decl.len(), b.pipe.is_assign) {
                (0, _) => {}
                (1, false) => set_top(st, 1, elem.clone()),
                (_, false) => {
                    set_top(st, 1, elem.clone());
                    set_top(st, 2, key);
                }
                (1, true) => set_var(st, &b.pipe.decl[0], elem.clone()),
                (_, true) => {
                    set_var(st, &b.pipe.decl[0], key);
                    set_var(st, &b.pipe.decl[1], elem.clone());
                }
            }
            let flow = self.walk(st, &b.list, &elem, out)?;
            st.vars.truncate(inner_mark);
            if matches!(flow, Flow::Break) {
                break;
            }
        }
        st.vars.truncate(mark);
        Ok(())
    }

    fn eval_pipeline(&mut self, st: &mut State, dot: &Value, pipe: &Pipe) -> EResult<Value> {
        let mut value: Option<Value> = None;
        for cmd in &pipe.cmds {
            value = Some(self.eval_command(st, dot, cmd, value)?);
        }
        let value = value.unwrap_or_default();
        for var in &pipe.decl {
            if pipe.is_assign {
                set_var(st, var, value.clone());
            } else {
                st.vars.push((var.clone(), value.clone()));
            }
        }
        Ok(value)
    }

    fn eval_command(
        &mut self,
        st: &mut State,
        dot: &Value,
        cmd: &Command,
        final_: Option<Value>,
    ) -> EResult<Value> {
        let first = &cmd.args[0];
        let rest = &cmd.args[1..];
        match first {
            Arg::Field(pos, names) => {
                self.eval_fields(st, dot, *pos, first, dot.clone(), names, rest, final_, true)
            }
            Arg::Variable(pos, name, fields) => {
                let v = self.var(st, *pos, name)?;
                if fields.is_empty() {
                    self.not_a_function(st, cmd, rest, &final_)?;
                    return Ok(v);
                }
                self.eval_fields(st, dot, *pos, first, v, fields, rest, final_, true)
            }
            Arg::Chain(pos, node, fields) => {
                let v = self.eval_arg(st, dot, node)?;
                self.eval_fields(st, dot, *pos, first, v, fields, rest, final_, true)
            }
            Arg::Ident(pos, name) => self.eval_function(st, dot, *pos, name, cmd, rest, final_),
            Arg::Pipe(pipe) => {
                self.not_a_function(st, cmd, rest, &final_)?;
                self.eval_pipeline_scoped(st, dot, pipe)
            }
            other => {
                self.not_a_function(st, cmd, rest, &final_)?;
                self.eval_arg(st, dot, other)
            }
        }
    }

    fn not_a_function(
        &self,
        st: &State,
        cmd: &Command,
        rest: &[Arg],
        final_: &Option<Value>,
    ) -> EResult<()> {
        if !rest.is_empty() || final_.is_some() {
            return Err(self.error(
                st,
                cmd.pos,
                cmd.to_string(),
                format!("can't give argument to non-function {}", cmd.args[0]),
            ));
        }
        Ok(())
    }

    /// A parenthesised pipeline: its declarations stay inside the parentheses.
    fn eval_pipeline_scoped(&mut self, st: &mut State, dot: &Value, pipe: &Pipe) -> EResult<Value> {
        let mark = st.vars.len();
        let v = self.eval_pipeline(st, dot, pipe);
        if !pipe.is_assign {
            st.vars.truncate(mark);
        }
        v
    }

    fn eval_arg(&mut self, st: &mut State, dot: &Value, arg: &Arg) -> EResult<Value> {
        Ok(match arg {
            Arg::Dot => dot.clone(),
            Arg::Nil => Value::Nil,
            Arg::Bool(b) => Value::Bool(*b),
            Arg::Str(_, s) => Value::String(s.clone()),
            Arg::Number(n) => number_value(n),
            Arg::Field(pos, names) => {
                self.eval_fields(st, dot, *pos, arg, dot.clone(), names, &[], None, true)?
            }
            Arg::Variable(pos, name, fields) => {
                let v = self.var(st, *pos, name)?;
                if fields.is_empty() {
                    v
                } else {
                    self.eval_fields(st, dot, *pos, arg, v, fields, &[], None, true)?
                }
            }
            Arg::Chain(pos, node, fields) => {
                let v = self.eval_arg(st, dot, node)?;
                self.eval_fields(st, dot, *pos, arg, v, fields, &[], None, true)?
            }
            Arg::Pipe(pipe) => self.eval_pipeline_scoped(st, dot, pipe)?,
            Arg::Ident(pos, name) => {
                let cmd = Command {
                    pos: *pos,
                    args: Vec::new(),
                };
                self.eval_function(st, dot, *pos, name, &cmd, &[], None)?
            }
        })
    }

    fn var(&self, st: &State, pos: usize, name: &str) -> EResult<Value> {
        match st.vars.iter().rev().find(|(n, _)| n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => Err(self.error(
                st,
                pos,
                format!("${name}"),
                format!("undefined variable: ${name}"),
            )),
        }
    }

    /// A field chain on `receiver`; the last name gets `args` and `final_` when it is a
    /// method. `first_silent`: a nil first receiver yields nil, as Go's invalid values do.
    #[allow(clippy::too_many_arguments)]
    fn eval_fields(
        &mut self,
        st: &mut State,
        dot: &Value,
        pos: usize,
        node: &Arg,
        receiver: Value,
        names: &[String],
        args: &[Arg],
        final_: Option<Value>,
        first_silent: bool,
    ) -> EResult<Value> {
        let mut cur = receiver;
        let last = names.len().saturating_sub(1);
        for (i, name) in names.iter().enumerate() {
            let is_last = i == last;
            let has_args = is_last && (!args.is_empty() || final_.is_some());
            cur = match cur {
                Value::Nil => {
                    if i == 0 && first_silent {
                        Value::Nil
                    } else {
                        return Err(self.error(
                            st,
                            pos,
                            node.to_string(),
                            format!("nil pointer evaluating interface {{}}.{name}"),
                        ));
                    }
                }
                Value::Map(m) => {
                    if has_args {
                        return Err(self.error(
                            st,
                            pos,
                            node.to_string(),
                            format!("{name} is not a method but has arguments"),
                        ));
                    }
                    m.get(name).unwrap_or(Value::Nil)
                }
                Value::Object(o) => {
                    let mut argv = Vec::new();
                    if is_last {
                        for a in args {
                            argv.push(self.eval_arg(st, dot, a)?);
                        }
                        if let Some(f) = &final_ {
                            argv.push(f.clone());
                        }
                    }
                    match o.member(name, &argv) {
                        Some(Ok(v)) => v,
                        Some(Err(e)) => {
                            return Err(self.error(
                                st,
                                pos,
                                node.to_string(),
                                format!("error calling {name}: {e}"),
                            ));
                        }
                        None => {
                            return Err(self.error(
                                st,
                                pos,
                                node.to_string(),
                                format!("can't evaluate field {name} in type {}", o.type_name()),
                            ));
                        }
                    }
                }
                other => {
                    return Err(self.error(
                        st,
                        pos,
                        node.to_string(),
                        format!("can't evaluate field {name} in type {}", other.type_name()),
                    ));
                }
            };
        }
        Ok(cur)
    }

    #[allow(clippy::too_many_arguments)]
    fn eval_function(
        &mut self,
        st: &mut State,
        dot: &Value,
        pos: usize,
        name: &str,
        cmd: &Command,
        args: &[Arg],
        final_: Option<Value>,
    ) -> EResult<Value> {
        let Some(func) = self.set.functions().get(name) else {
            return Err(self.error(
                st,
                pos,
                name.to_owned(),
                format!("{name:?} is not a defined function"),
            ));
        };
        // `and` and `or` evaluate their arguments only as far as needed.
        if matches!(func, Func::Builtin(_)) && (name == "and" || name == "or") {
            let count = args.len() + usize::from(final_.is_some());
            if count == 0 {
                return Err(self.error(
                    st,
                    pos,
                    name.to_owned(),
                    format!("wrong number of args for {name}: want at least 1 got 0"),
                ));
            }
            let mut v = Value::Nil;
            for a in args {
                v = self.eval_arg(st, dot, a)?;
                if v.is_truthy() == (name == "or") {
                    return Ok(v);
                }
            }
            if let Some(f) = final_ {
                v = f;
            }
            return Ok(v);
        }
        let mut argv = Vec::with_capacity(args.len() + 1);
        for a in args {
            argv.push(self.eval_arg(st, dot, a)?);
        }
        if let Some(f) = final_ {
            argv.push(f);
        }
        let result = match func {
            Func::Builtin(f) => f(self, &argv),
            Func::Custom(f) => f(&argv).map_err(FnError::new),
        };
        result.map_err(|e| {
            let context = if cmd.args.is_empty() {
                name.to_owned()
            } else {
                cmd.to_string()
            };
            let message = if e.message == crate::funcs::REFUSED_MARKER {
                let reason = crate::funcs::REFUSED
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map_or("not supported", |(_, r)| r);
                format!("error calling {name}: {reason}")
            } else if e.bare {
                e.message
            } else {
                format!("error calling {name}: {}", e.message)
            };
            let mut err = self.error(st, cmd.pos.min(pos), context, message);
            if let Error::Exec(exec) = &mut err {
                exec.failure = e.failure;
            }
            err
        })
    }

    fn error(&self, st: &State, pos: usize, context: String, message: impl Into<String>) -> Error {
        let (line, column) = st.tree.line_col(pos);
        Error::Exec(Box::new(ExecError {
            template: st.tree.parse_name.clone(),
            line,
            column,
            executing: st.tree.name.clone(),
            context,
            message: message.into(),
            failure: None,
        }))
    }
}

fn set_var(st: &mut State, name: &str, value: Value) {
    if let Some(slot) = st.vars.iter_mut().rev().find(|(n, _)| n == name) {
        slot.1 = value;
    }
}

/// Sets the `n`th variable from the top (1 is the top), as Go's `setTopVar`.
fn set_top(st: &mut State, n: usize, value: Value) {
    let len = st.vars.len();
    if n <= len {
        st.vars[len - n].1 = value;
    }
}

/// A number constant as Go passes it to an `interface{}` parameter: an `int`, or a
/// `float64` when written with a fraction or exponent.
fn number_value(n: &Number) -> Value {
    let t = n.text.to_ascii_lowercase();
    let hex = t.trim_start_matches(['+', '-']).starts_with("0x");
    let looks_float = !n.is_char && !hex && t.contains(['.', 'e', 'p']);
    match (looks_float, n.int, n.float) {
        (false, Some(i), _) => Value::Int(i),
        (_, _, Some(f)) => Value::Float(f),
        (_, Some(i), None) => Value::Int(i),
        (_, None, None) => Value::Nil,
    }
}
