//! The repository's Dockerfile as the image tests read it: each stage's
//! base image, variables, commands, copies, user and entry point, parsed
//! with parse-dockerfile (continuation lines, exec and shell forms, flags)
//! into plain owned values. What the file uses and this does not read
//! fails loudly.

use std::collections::BTreeMap;

use parse_dockerfile::{Command as Cmd, HealthcheckArguments, Instruction};

use super::files::shell_commands;

/// One stage of the Dockerfile: what these tests read of it.
#[derive(Debug, Default)]
pub struct Stage {
    pub base: String,
    pub name: Option<String>,
    pub env: BTreeMap<String, String>,
    /// Each `RUN`: its flags (`mount=…`) and its simple commands.
    pub runs: Vec<(Vec<String>, Vec<Vec<String>>)>,
    pub copies: Vec<Copy>,
    pub expose: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    /// In exec form: the shell form would run the host under `sh -c`, which
    /// does not pass it SIGTERM.
    pub entrypoint: Option<Vec<String>>,
    /// `HEALTHCHECK`: its options (`interval` …) and exec-form command.
    pub healthcheck: Option<(BTreeMap<String, String>, Vec<String>)>,
}

#[derive(Debug)]
pub struct Copy {
    pub from: Option<String>,
    pub chown: Option<String>,
    pub sources: Vec<String>,
    pub dest: String,
}

/// The Dockerfile's stages, in order.
pub fn stages() -> Vec<Stage> {
    let path = super::workspace().join("Dockerfile");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let file = parse_dockerfile::parse(&text)
        .unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
    let flags = |flags: &mut dyn Iterator<Item = &parse_dockerfile::Flag<'_>>| {
        flags
            .map(|f| {
                (
                    f.name.value.to_string(),
                    f.value.as_ref().map(|v| v.value.to_string()),
                )
            })
            .collect::<BTreeMap<_, _>>()
    };
    let exec = |command: &Cmd<'_>, what: &str| match command {
        Cmd::Exec(args) => args.value.iter().map(|a| a.value.to_string()).collect(),
        _ => panic!("{what} must be in exec form (a JSON array)"),
    };
    file.stages()
        .map(|stage| {
            let mut s = Stage {
                base: stage.from.image.value.to_string(),
                name: stage.from.as_.as_ref().map(|(_, n)| n.value.to_string()),
                ..Stage::default()
            };
            for instruction in stage.instructions {
                match instruction {
                    Instruction::Env(env) => {
                        for word in shell_commands(&env.arguments.value).concat() {
                            let (k, v) = word
                                .split_once('=')
                                .unwrap_or_else(|| panic!("ENV `{word}`: write NAME=value"));
                            s.env.insert(k.to_owned(), v.to_owned());
                        }
                    }
                    Instruction::Run(run) => {
                        let Cmd::Shell(text) = &run.arguments else {
                            panic!("RUN in exec form is not read here")
                        };
                        let options = flags(&mut run.options.iter())
                            .into_iter()
                            .map(|(k, v)| format!("{k}={}", v.unwrap_or_default()))
                            .collect();
                        s.runs.push((options, shell_commands(text.value)));
                    }
                    Instruction::Copy(copy) => {
                        let options = flags(&mut copy.options.iter());
                        let sources = copy.src.iter().map(|src| match src {
                            parse_dockerfile::Source::Path(p) => p.value.to_string(),
                            _ => panic!("COPY from a here-document is not read here"),
                        });
                        s.copies.push(Copy {
                            from: options.get("from").cloned().flatten(),
                            chown: options.get("chown").cloned().flatten(),
                            sources: sources.collect(),
                            dest: copy.dest.value.to_string(),
                        });
                    }
                    Instruction::Expose(expose) => {
                        s.expose
                            .extend(expose.arguments.iter().map(|p| p.value.to_string()));
                    }
                    Instruction::User(user) => s.user = Some(user.arguments.value.to_string()),
                    Instruction::Workdir(dir) => s.workdir = Some(dir.arguments.value.to_string()),
                    Instruction::Entrypoint(e) => {
                        s.entrypoint = Some(exec(&e.arguments, "ENTRYPOINT"));
                    }
                    Instruction::Healthcheck(check) => {
                        let HealthcheckArguments::Cmd { arguments, .. } = &check.arguments else {
                            panic!("HEALTHCHECK NONE")
                        };
                        let options = flags(&mut check.options.iter())
                            .into_iter()
                            .map(|(k, v)| (k, v.unwrap_or_default()))
                            .collect();
                        s.healthcheck = Some((options, exec(arguments, "HEALTHCHECK CMD")));
                    }
                    Instruction::Arg(_) | Instruction::Label(_) => {}
                    other => panic!("{other:?} is not read here: teach image.rs"),
                }
            }
            s
        })
        .collect()
}

/// The stage that builds, and the one the image runs.
pub fn builder_and_runtime() -> (Stage, Stage) {
    let mut stages = stages();
    assert_eq!(stages.len(), 2, "a build stage and a runtime stage");
    let runtime = stages.pop().expect("two stages");
    let builder = stages.pop().expect("two stages");
    (builder, runtime)
}
