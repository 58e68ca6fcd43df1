//! The interactive `top` (ratatui over crossterm): the shard and sink tables, refreshed every
//! interval; `s` cycles the order, `q`, Esc or Ctrl-C quit. The terminal is restored on every
//! way out, panics included (ratatui's hook).

use std::time::Duration;

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::widgets::{Block, Paragraph, Row, Table};
use ratatui::{DefaultTerminal, Frame};
use tokio::time::Instant;

use super::model::{SortKey, Top, View};
use super::plain::{shard_cells, sink_cells, SHARD_HEADER, SINK_HEADER};
use super::sample::Sources;

/// How long one wait for a key lasts, so that refreshes stay on time.
const KEY_POLL: Duration = Duration::from_millis(200);

/// Runs the interactive view until the user quits.
///
/// # Errors
///
/// When the terminal cannot be set up or drawn.
pub async fn run(sources: Sources, interval: Duration, sort: SortKey) -> anyhow::Result<()> {
    let mut terminal = ratatui::try_init()?;
    let outcome = event_loop(&mut terminal, &sources, interval, sort).await;
    ratatui::restore();
    outcome
}

async fn event_loop(
    terminal: &mut DefaultTerminal,
    sources: &Sources,
    interval: Duration,
    sort: SortKey,
) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let mut top = Top::new(sort);
    let mut view = top.update(&sources.sample(&http).await, Instant::now());
    let mut next_sample = Instant::now() + interval;
    loop {
        terminal.draw(|frame| draw(frame, &view))?;
        let pressed = tokio::task::spawn_blocking(|| -> std::io::Result<Option<Event>> {
            if event::poll(KEY_POLL)? {
                event::read().map(Some)
            } else {
                Ok(None)
            }
        })
        .await??;
        if let Some(Event::Key(key)) = pressed {
            if key.kind == KeyEventKind::Press {
                match key.code {
                    KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
                    KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                        return Ok(())
                    }
                    KeyCode::Char('s') => {
                        top.sort = top.sort.next();
                        view.resort(top.sort);
                    }
                    _ => {}
                }
            }
        }
        if Instant::now() >= next_sample {
            view = top.update(&sources.sample(&http).await, Instant::now());
            next_sample = Instant::now() + interval;
        }
    }
}

fn draw(frame: &mut Frame, view: &View) {
    let sink_height = view.sinks.len() as u16 + 3;
    let [title, shards, sinks, errors] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(4),
        Constraint::Length(sink_height),
        Constraint::Length(view.errors.len() as u16),
    ])
    .areas(frame.area());
    frame.render_widget(
        Paragraph::new(format!(
            "siem-forwarder top  (sorted by {}; s: sort, q: quit)",
            view.sort.name()
        )),
        title,
    );
    frame.render_widget(
        table(
            "shards",
            &SHARD_HEADER,
            view.shards
                .iter()
                .map(|line| shard_cells(line).to_vec())
                .collect(),
        ),
        shards,
    );
    frame.render_widget(
        table(
            "sinks",
            &SINK_HEADER,
            view.sinks
                .iter()
                .map(|line| sink_cells(line).to_vec())
                .collect(),
        ),
        sinks,
    );
    frame.render_widget(
        Paragraph::new(
            view.errors
                .iter()
                .map(|error| format!("error: {error}"))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        errors,
    );
}

fn table<'a>(title: &'a str, header: &[&'a str], rows: Vec<Vec<String>>) -> Table<'a> {
    let widths: Vec<Constraint> = (0..header.len())
        .map(|column| {
            let widest = rows
                .iter()
                .map(|row| row[column].chars().count())
                .chain(std::iter::once(header[column].len()))
                .max()
                .unwrap_or(0);
            Constraint::Length(widest as u16)
        })
        .collect();
    Table::new(rows.into_iter().map(Row::new), widths)
        .header(Row::new(header.to_vec()).style(Style::default().add_modifier(Modifier::BOLD)))
        .column_spacing(2)
        .block(Block::bordered().title(title))
}
