//! A template set: named files parsed together, sharing their `define`s.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::Error;
use crate::exec::Exec;
use crate::funcs::Functions;
use crate::parse::{Tree, line_col, parse};
use crate::value::Value;

/// Helm's limit on nested `include`s of one name, used here for all nesting.
pub const DEFAULT_MAX_DEPTH: usize = 1000;

/// Stack for the rendering thread: enough for [`DEFAULT_MAX_DEPTH`] nested includes in
/// unoptimised builds. Only touched pages are ever backed by memory.
const EXEC_STACK_BYTES: usize = 256 * 1024 * 1024;

/// Templates parsed into one namespace, as Helm parses every file of a chart and its
/// subcharts into one Go template.
///
/// Each file is a template named after the file; every `define` in any file is a
/// template too. A later [`TemplateSet::add`] replaces earlier templates of the same
/// name, except that an empty (whitespace-only) `define` does not replace a non-empty
/// one, as in Go. Helm adds files deepest path first and, at equal depth, in reverse
/// lexical order, so that a parent chart's defines win over its subcharts';
/// [`helm_parse_order`] gives that order.
#[derive(Clone)]
pub struct TemplateSet {
    functions: Arc<Functions>,
    templates: HashMap<String, Arc<Tree>>,
    max_depth: usize,
}

impl Default for TemplateSet {
    fn default() -> Self {
        Self::new()
    }
}

impl TemplateSet {
    /// An empty set with Helm's functions (Go's builtins, Sprig, and Helm's own).
    pub fn new() -> Self {
        Self::with_functions(Functions::helm())
    }

    /// An empty set with the given functions.
    pub fn with_functions(functions: Functions) -> Self {
        TemplateSet {
            functions: Arc::new(functions),
            templates: HashMap::new(),
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }

    /// Limits how deeply `include`, `template` and `tpl` may nest (default 1000, Helm's
    /// limit). Each level takes stack: run deep renders on a thread with a large stack.
    pub fn set_max_depth(&mut self, depth: usize) {
        self.max_depth = depth;
    }

    pub(crate) fn max_depth(&self) -> usize {
        self.max_depth
    }

    pub(crate) fn functions(&self) -> &Functions {
        &self.functions
    }

    pub(crate) fn tree(&self, name: &str) -> Option<Arc<Tree>> {
        self.templates.get(name).cloned()
    }

    /// Parses `text` as the template `name` and adds it and its `define`s to the set.
    pub fn add(&mut self, name: &str, text: &str) -> Result<(), Error> {
        let functions = self.functions.clone();
        let trees = parse(name, text, &|n| functions.contains(n)).map_err(|e| {
            let (line, _) = line_col(text, e.pos);
            Error::Parse {
                template: name.to_owned(),
                line,
                message: e.message,
            }
        })?;
        for tree in trees {
            let keep_old = tree.is_empty()
                && self
                    .templates
                    .get(&tree.name)
                    .is_some_and(|old| !old.is_empty());
            if !keep_old {
                self.templates.insert(tree.name.clone(), Arc::new(tree));
            }
        }
        Ok(())
    }

    /// Whether a template (file or define) of that name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.templates.contains_key(name)
    }

    /// The names of all templates, files and defines, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.templates.keys().cloned().collect();
        names.sort();
        names
    }

    /// Executes the template `name` with `data` as `.` and `$`, returning exactly what
    /// Go's `text/template` writes (nil values print as `<no value>`).
    pub fn execute(&self, name: &str, data: &Value) -> Result<String, Error> {
        let Some(tree) = self.tree(name) else {
            return Err(Error::NoTemplate {
                name: name.to_owned(),
            });
        };
        // Nesting (`include` in `include`, up to the depth limit) recurses through the
        // executor; a thread of its own gives it a stack that holds the whole limit.
        let run = |tree: Arc<Tree>| {
            let mut exec = Exec::new(self);
            let mut out = String::new();
            exec.exec_tree(tree, data.clone(), &mut out)?;
            Ok(out)
        };
        std::thread::scope(|scope| {
            let worker = std::thread::Builder::new()
                .name("gotmpl".into())
                .stack_size(EXEC_STACK_BYTES)
                .spawn_scoped(scope, || run(tree.clone()));
            match worker {
                Ok(handle) => match handle.join() {
                    Ok(result) => result,
                    Err(panic) => std::panic::resume_unwind(panic),
                },
                // No thread to be had: render on this one.
                Err(_) => run(tree.clone()),
            }
        })
    }

    /// Executes the template `name` as Helm renders a chart file: [`execute`], then
    /// every `<no value>` removed.
    ///
    /// [`execute`]: TemplateSet::execute
    pub fn render(&self, name: &str, data: &Value) -> Result<String, Error> {
        Ok(self.execute(name, data)?.replace("<no value>", ""))
    }
}

/// Sorts file names in the order Helm parses them: more path segments first, then
/// reverse lexical order. Adding files in this order makes defines resolve as in Helm.
pub fn helm_parse_order<S: AsRef<str>>(names: &[S]) -> Vec<String> {
    let mut out: Vec<String> = names.iter().map(|s| s.as_ref().to_owned()).collect();
    out.sort_by(|a, b| {
        let (ca, cb) = (a.matches('/').count(), b.matches('/').count());
        cb.cmp(&ca).then_with(|| b.cmp(a))
    });
    out
}
