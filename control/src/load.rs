//! How load changes over a run: users (`-u`/`-r`), user stages, an arrival
//! rate with its stages, or the scenario's `shape()` function. The run
//! loop asks [`Driver::tick`] what to do at least every 200 ms; the driver
//! answers with commands for the node and, when the plan is over, why the
//! run ends.

use std::time::Duration;

use blast_script::{Shape, ShapeNow, ShapeTick};

use crate::plan::{Load, RunPlan, Stage};

/// What the node should do now.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Command {
    /// Closed model: move to `users` users at `rate` users per second.
    Ramp { users: u64, rate: f64 },
    /// Closed model: move each user type to its count.
    RampTypes { users: Vec<u64>, rate: f64 },
    /// Open model: move the arrival rate to `rate` over `over`.
    Rate { rate: f64, over: Duration },
    /// The plan is over: end the run, for this reason.
    End(String),
    /// The plan cannot go on (the shape failed): end the run, for this
    /// reason.
    Fail(String),
}

/// How a shape last set the load, to send only changes and to refuse a
/// shape that switches models mid-run.
#[derive(Clone, Debug, PartialEq)]
enum Last {
    None,
    Users(u64, f64),
    Types(Vec<u64>, f64),
    Rate(f64),
}

/// Follows a [`Load`] over time.
pub(crate) struct Driver {
    load: Load,
    users: u64,
    spawn_rate: f64,
    /// The stage whose command goes out next.
    stage: usize,
    /// The scenario's shape, for `Load::Shape`.
    shape: Option<Shape>,
    /// The shape's first answer, taken before the node starts (it decides
    /// the model).
    first: Option<ShapeTick>,
    /// The next whole second at which the shape is asked.
    next_second: u64,
    last: Last,
    /// The first ramp's target, and whether it was reached.
    first_target: Option<Target>,
}

/// What "the ramp reached its target" means for `--reset-stats`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Target {
    /// This many users are running.
    Users(u64),
    /// The arrival rate has reached its first target at this time.
    RateAt(Duration),
}

impl Driver {
    /// A driver for `plan`; asks the scenario's shape for its first answer
    /// when the load follows it.
    pub(crate) fn new(plan: &RunPlan) -> Result<Driver, String> {
        let mut driver = Driver {
            load: plan.load.clone(),
            users: plan.users,
            spawn_rate: plan.spawn_rate,
            stage: 0,
            shape: None,
            first: None,
            next_second: 0,
            last: Last::None,
            first_target: None,
        };
        if plan.load == Load::Shape {
            let mut shape = plan
                .scenario
                .shape()
                .map_err(|e| e.to_string())?
                .ok_or_else(|| {
                    format!(
                        "{}: the load follows shape(), but the scenario has no shape function",
                        plan.scenario.file()
                    )
                })?;
            let first = shape
                .tick(0.0, &ShapeNow::default())
                .map_err(|e| format!("shape(0): {e}"))?;
            if first == ShapeTick::Stop {
                return Err("shape(0) returned (): the run would end before it starts".into());
            }
            driver.shape = Some(shape);
            driver.first = Some(first);
        }
        driver.first_target = match &driver.load {
            Load::Users => Some(Target::Users(plan.users)),
            Load::Stages(stages) => stages
                .iter()
                .find(|s| s.target > 0.0)
                .map(|s| Target::Users(s.target as u64)),
            Load::Rate { stages, .. } => Some(Target::RateAt(
                stages.first().map_or(Duration::ZERO, |s| s.duration),
            )),
            Load::Shape => match &driver.first {
                Some(ShapeTick::Users { users, .. }) => Some(Target::Users(*users)),
                Some(ShapeTick::TypedUsers { users, .. }) => {
                    Some(Target::Users(users.iter().sum()))
                }
                _ => Some(Target::RateAt(Duration::ZERO)),
            },
        };
        Ok(driver)
    }

    /// Whether the load is an arrival rate (the open model).
    pub(crate) fn is_open(&self) -> bool {
        match &self.load {
            Load::Rate { .. } => true,
            Load::Shape => matches!(self.first, Some(ShapeTick::Rate { .. })),
            _ => false,
        }
    }

    /// The highest arrival rate the plan names, when it names one.
    pub(crate) fn peak_rate(&self) -> Option<f64> {
        match &self.load {
            Load::Rate { start, stages } => {
                Some(stages.iter().map(|s| s.target).fold(*start, f64::max))
            }
            Load::Shape => match self.first {
                Some(ShapeTick::Rate { rate }) => Some(rate),
                _ => None,
            },
            _ => None,
        }
    }

    /// When the plan ends, when that is known ahead: after its stages.
    pub(crate) fn planned_end(&self) -> Option<Duration> {
        match &self.load {
            Load::Stages(stages) | Load::Rate { stages, .. } if !stages.is_empty() => {
                Some(stages.iter().map(|s| s.duration).sum())
            }
            _ => None,
        }
    }

    /// When, after `elapsed`, the plan next changes the load: the next
    /// stage's start, or the next whole second a shape is asked at.
    pub(crate) fn next_change(&self, elapsed: Duration) -> Option<Duration> {
        match &self.load {
            Load::Stages(stages) | Load::Rate { stages, .. } => {
                let mut begins = Duration::ZERO;
                for stage in stages {
                    begins += stage.duration;
                    if begins > elapsed {
                        return Some(begins);
                    }
                }
                None
            }
            Load::Shape => Some(Duration::from_secs(self.next_second)),
            Load::Users => None,
        }
    }

    /// What `--reset-stats` waits for.
    pub(crate) fn first_target(&self) -> Option<Target> {
        self.first_target
    }

    /// The users the closed model is heading for (for the progress line).
    pub(crate) fn target_users(&self) -> Option<u64> {
        match &self.last {
            Last::Users(users, _) => Some(*users),
            Last::Types(users, _) => Some(users.iter().sum()),
            _ => None,
        }
    }

    /// What to do at `elapsed` since the start; `now` says what the run is
    /// doing, for a shape's `ctx` (asked only when the shape is).
    pub(crate) fn tick(&mut self, elapsed: Duration, now: impl Fn() -> ShapeNow) -> Vec<Command> {
        match self.load.clone() {
            Load::Users => {
                if self.last == Last::None {
                    self.last = Last::Users(self.users, self.spawn_rate);
                    return vec![Command::Ramp {
                        users: self.users,
                        rate: self.spawn_rate,
                    }];
                }
                Vec::new()
            }
            Load::Stages(stages) => self.stages(&stages, elapsed, |from, stage| {
                let users = stage.target.round() as u64;
                let change = users.abs_diff(from.round() as u64) as f64;
                let rate = if stage.duration.is_zero() {
                    f64::INFINITY
                } else {
                    change / stage.duration.as_secs_f64()
                };
                Command::Ramp { users, rate }
            }),
            Load::Rate { start, stages } => {
                let mut commands = Vec::new();
                if self.last == Last::None {
                    self.last = Last::Rate(start);
                    commands.push(Command::Rate {
                        rate: start,
                        over: Duration::ZERO,
                    });
                }
                if !stages.is_empty() {
                    commands.extend(self.stages(&stages, elapsed, |_, stage| Command::Rate {
                        rate: stage.target,
                        over: stage.duration,
                    }));
                }
                commands
            }
            Load::Shape => self.shape(elapsed, now),
        }
    }

    /// Stage commands: each stage's when it begins, then the end.
    fn stages(
        &mut self,
        stages: &[Stage],
        elapsed: Duration,
        command: impl Fn(f64, &Stage) -> Command,
    ) -> Vec<Command> {
        let mut commands = Vec::new();
        let mut begins = Duration::ZERO;
        let mut from = 0.0;
        for (i, stage) in stages.iter().enumerate() {
            if i == self.stage && elapsed >= begins {
                let next = command(from, stage);
                if let Command::Ramp { users, rate } = &next {
                    self.last = Last::Users(*users, *rate);
                }
                commands.push(next);
                self.stage += 1;
            }
            begins += stage.duration;
            from = stage.target;
        }
        if self.stage == stages.len() && elapsed >= begins {
            commands.push(Command::End("stages done".into()));
        }
        commands
    }

    fn shape(&mut self, elapsed: Duration, now: impl Fn() -> ShapeNow) -> Vec<Command> {
        let mut commands = Vec::new();
        while elapsed.as_secs() >= self.next_second {
            let second = self.next_second;
            self.next_second += 1;
            let answer = match self.first.take() {
                Some(first) => Ok(first),
                None => match &mut self.shape {
                    Some(shape) => shape.tick(second as f64, &now()),
                    None => Err("no shape function".into()),
                },
            };
            let answer = match answer {
                Ok(answer) => answer,
                Err(e) => {
                    commands.push(Command::Fail(format!("shape({second}) failed: {e}")));
                    return commands;
                }
            };
            let next = match &answer {
                ShapeTick::Stop => {
                    commands.push(Command::End("shape ended".into()));
                    return commands;
                }
                ShapeTick::Users { users, spawn_rate } => Last::Users(*users, *spawn_rate),
                ShapeTick::TypedUsers { users, spawn_rate } => {
                    Last::Types(users.clone(), *spawn_rate)
                }
                ShapeTick::Rate { rate } => Last::Rate(*rate),
            };
            let same_kind = std::mem::discriminant(&next) == std::mem::discriminant(&self.last);
            if self.last != Last::None && !same_kind {
                commands.push(Command::Fail(format!(
                    "shape({second}) failed: it returned {} after {}; a shape keeps one form for the whole run",
                    describe(&next),
                    describe(&self.last)
                )));
                return commands;
            }
            if next != self.last {
                commands.push(match &next {
                    Last::Users(users, rate) => Command::Ramp {
                        users: *users,
                        rate: *rate,
                    },
                    Last::Types(users, rate) => Command::RampTypes {
                        users: users.clone(),
                        rate: *rate,
                    },
                    Last::Rate(rate) => Command::Rate {
                        rate: *rate,
                        over: Duration::ZERO,
                    },
                    Last::None => unreachable!("a shape answer is never None"),
                });
                self.last = next;
            }
        }
        commands
    }
}

fn describe(last: &Last) -> &'static str {
    match last {
        Last::None => "nothing",
        Last::Users(..) => "#{ users, spawn_rate }",
        Last::Types(..) => "users per type",
        Last::Rate(..) => "#{ rate }",
    }
}
