//! `metrics-hub plugin new`: a plugin skeleton in Rust, Python or JavaScript, and the
//! `sources.d` file that points the hub at the component it builds into.
//!
//! Every skeleton is the same small, working plugin (settings checked at `initialize`, a
//! paged HTTP API read through the host, unit tests of the logic in the language's own
//! runner) so that a new author starts from something that builds, serves and is tested,
//! and edits the request and the mapping. The shipped `tally` examples under `plugins/`
//! are exactly this output for the name `tally` (a test keeps them equal), so the
//! end-to-end tests of those examples are tests of the skeletons.
//!
//! The templates are files under `templates/`, with `{{placeholder}}`s filled by plain
//! replacement (no template language: the files are Rust, Python and JavaScript).

use std::path::{Component, Path, PathBuf};

/// The languages a plugin can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

/// What to write and where.
#[derive(Debug, Clone)]
pub struct Request {
    /// The plugin's and the source's name: lowercase letters, digits and dashes.
    pub name: String,
    pub lang: Lang,
    /// The plugin workspace (the repository's `plugins/`).
    pub plugins: PathBuf,
    /// The directory of source files.
    pub sources: PathBuf,
}

/// What was written.
#[derive(Debug)]
pub struct Written {
    /// Every file, in the order written.
    pub files: Vec<PathBuf>,
    /// The component the build produces, which the source file names.
    pub component: PathBuf,
    /// How to build it.
    pub build: String,
    /// How to run its unit tests.
    pub test: String,
    /// The variable that enables the source and carries its API key.
    pub key_var: String,
}

/// Why nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error("`{0}` is not a plugin name: use lowercase letters, digits and dashes, starting with a letter (at most 40, not a name cargo reserves, not ending in -py or -js), e.g. my-api")]
    Name(String),
    #[error("{} already exists; nothing was written (pick another name or move it away)", .0.display())]
    Exists(PathBuf),
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

const RUST: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("templates/rust/Cargo.toml")),
    ("src/lib.rs", include_str!("templates/rust/lib.rs")),
];
const PYTHON: &[(&str, &str)] = &[
    ("app.py", include_str!("templates/python/app.py")),
    ("logic.py", include_str!("templates/python/logic.py")),
    (
        "test_logic.py",
        include_str!("templates/python/test_logic.py"),
    ),
];
const JS: &[(&str, &str)] = &[
    ("plugin.js", include_str!("templates/js/plugin.js")),
    ("logic.js", include_str!("templates/js/logic.js")),
    ("logic.test.js", include_str!("templates/js/logic.test.js")),
];
const SOURCE: &str = include_str!("templates/source.yaml");

/// Where the build puts components, under the plugin workspace.
pub const COMPONENTS: &str = "target/wasm32-wasip2/release";

/// The layout of one plugin: its directory under `plugins/` and its component's name.
struct Layout {
    dir: String,
    component: String,
    templates: &'static [(&'static str, &'static str)],
    build: String,
    test: String,
}

fn layout(name: &str, lang: Lang) -> Layout {
    let module = name.replace('-', "_");
    match lang {
        Lang::Rust => Layout {
            dir: name.to_owned(),
            component: format!("{module}.wasm"),
            templates: RUST,
            build: format!("plugins/build.sh -p {name}"),
            test: format!("(cd plugins && cargo test -p {name})"),
        },
        Lang::Python => Layout {
            dir: format!("python/{module}"),
            component: format!("{module}_py.wasm"),
            templates: PYTHON,
            build: "plugins/build.sh".into(),
            test: format!("(cd plugins/python/{module} && python3 -m pytest)"),
        },
        Lang::Js => Layout {
            dir: format!("js/{name}"),
            component: format!("{name}_js.wasm"),
            templates: JS,
            build: "plugins/build.sh".into(),
            test: format!("(cd plugins/js && node --test {name}/*.test.js)"),
        },
    }
}

/// Crate names cargo refuses or this workspace uses for something else.
const RESERVED: &[&str] = &[
    "test",
    "std",
    "core",
    "alloc",
    "proc-macro",
    "self",
    "crate",
    "super",
    "target",
    "python",
    "js",
    "guest-support",
    "guest-dates",
];

/// Checks a plugin name.
pub fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    // Names cargo or the workspace reserve, and suffixes whose components would collide
    // with another language's (`foo-py` in Rust and `foo` in Python are both foo_py.wasm).
    let reserved = RESERVED.contains(&name) || name.ends_with("-py") || name.ends_with("-js");
    if first_ok && rest_ok && name.len() <= 40 && !name.ends_with('-') && !reserved {
        Ok(())
    } else {
        Err(ScaffoldError::Name(name.to_owned()))
    }
}

/// The files of a plugin (paths relative to `plugins/`) and of its source (relative to
/// the sources directory), rendered, without touching the disk.
pub fn render(request: &Request) -> Result<(Vec<(PathBuf, String)>, String), ScaffoldError> {
    check_name(&request.name)?;
    let layout = layout(&request.name, request.lang);
    let env = env_prefix(&request.name);
    let component = relative(
        &request.sources,
        &request.plugins.join(COMPONENTS).join(&layout.component),
    );
    let schema = relative(
        &request.sources,
        &request.plugins.join("../schemas/source.schema.json"),
    );
    let vars = [
        ("name", request.name.clone()),
        ("title", title(&request.name)),
        ("env", env),
        ("dir", layout.dir.clone()),
        ("component", component.display().to_string()),
        ("schema", schema.display().to_string()),
    ];
    let files = layout
        .templates
        .iter()
        .map(|(path, text)| (Path::new(&layout.dir).join(path), fill(text, &vars)))
        .collect();
    Ok((files, fill(SOURCE, &vars)))
}

/// Writes the skeleton and the source file; refuses, writing nothing, when any of the
/// files already exists.
pub fn write(request: &Request) -> Result<Written, ScaffoldError> {
    let (files, source) = render(request)?;
    let layout = layout(&request.name, request.lang);
    let mut targets: Vec<(PathBuf, String)> = files
        .into_iter()
        .map(|(path, text)| (request.plugins.join(path), text))
        .collect();
    targets.push((
        request.sources.join(format!("{}.yaml", request.name)),
        source,
    ));
    let plugin_dir = request.plugins.join(&layout.dir);
    if plugin_dir.exists() {
        return Err(ScaffoldError::Exists(plugin_dir));
    }
    if let Some((path, _)) = targets.iter().find(|(path, _)| path.exists()) {
        return Err(ScaffoldError::Exists(path.clone()));
    }
    for (path, text) in &targets {
        let io = |source| ScaffoldError::Io {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(path, text).map_err(io)?;
    }
    Ok(Written {
        files: targets.into_iter().map(|(path, _)| path).collect(),
        component: request.plugins.join(COMPONENTS).join(layout.component),
        build: layout.build,
        test: layout.test,
        key_var: format!("{}_API_KEY", env_prefix(&request.name)),
    })
}

/// `my-api` -> `MY_API`, the prefix of the source's variables.
fn env_prefix(name: &str) -> String {
    name.replace('-', "_").to_ascii_uppercase()
}

/// `my-api` -> `My Api`.
fn title(name: &str) -> String {
    name.split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `text` with every `{{key}}` replaced by its value.
fn fill(text: &str, vars: &[(&str, String)]) -> String {
    let filled = vars.iter().fold(text.to_owned(), |text, (key, value)| {
        text.replace(&format!("{{{{{key}}}}}"), value)
    });
    debug_assert!(!filled.contains("{{"), "a placeholder was left unfilled");
    filled
}

/// `to` relative to the directory `from` (both taken from the current directory when
/// relative), the way a source file names its component.
fn relative(from: &Path, to: &Path) -> PathBuf {
    let absolute = |path: &Path| {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        normalize(&path)
    };
    let (from, to) = (absolute(from), absolute(to));
    let common = from
        .components()
        .zip(to.components())
        .take_while(|(a, b)| a == b)
        .count();
    let ups = from.components().count() - common;
    std::iter::repeat_n(Component::ParentDir, ups)
        .chain(to.components().skip(common))
        .collect()
}

/// `path` without `.` and with each `..` taking away the component before it.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(name: &str, lang: Lang) -> Request {
        Request {
            name: name.into(),
            lang,
            plugins: "/repo/plugins".into(),
            sources: "/repo/sources.d".into(),
        }
    }

    #[test]
    fn names_are_checked() {
        for good in ["tally", "my-api", "v2-api"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "My",
            "2api",
            "my_api",
            "my-",
            "a b",
            "../x",
            &"a".repeat(41),
            "test",
            "target",
            "api-py",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_source_file_names_the_component_relative_to_itself() {
        let (_, yaml) = render(&request("my-api", Lang::Python)).unwrap();
        assert!(
            yaml.contains("component: ../plugins/target/wasm32-wasip2/release/my_api_py.wasm"),
            "{yaml}"
        );
        assert!(
            yaml.contains("$schema=../schemas/source.schema.json"),
            "{yaml}"
        );
        assert!(
            yaml.contains("enabled: \"${MY_API_API_KEY:+true}\""),
            "{yaml}"
        );
        assert!(yaml.contains("name: My Api\n"), "{yaml}");
    }

    #[test]
    fn each_language_has_its_own_layout() {
        let paths = |lang| {
            let (files, _) = render(&request("my-api", lang)).unwrap();
            files.into_iter().map(|(path, _)| path).collect::<Vec<_>>()
        };
        assert_eq!(
            paths(Lang::Rust),
            [
                PathBuf::from("my-api/Cargo.toml"),
                "my-api/src/lib.rs".into()
            ]
        );
        assert_eq!(
            paths(Lang::Python)[0],
            PathBuf::from("python/my_api/app.py")
        );
        assert_eq!(paths(Lang::Js)[0], PathBuf::from("js/my-api/plugin.js"));
    }

    #[test]
    fn relative_paths_climb_out_of_the_sources_directory() {
        assert_eq!(
            relative(Path::new("/a/b/sources"), Path::new("/a/plugins/x.wasm")),
            PathBuf::from("../../plugins/x.wasm")
        );
        assert_eq!(
            relative(Path::new("/a/s"), Path::new("/a/s/../p/x")),
            PathBuf::from("../p/x")
        );
    }
}
