"""bench/compare's output: medians over rounds, markdown tables with ratios
to the run's reference peer, and a gnuplot chart."""
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

# Figures taken from each run; the table shows their medians over rounds,
# except counts (errors, stalls), which are summed.
MEDIAN_FIELDS = ("rate", "cpu_us", "p50", "p99", "max", "gbit", "cpu_s_per_gb", "rss_per_conn",
                 "held", "upstream_cpu_us", "upstream_cpu_s_per_gb", "handshake_p50",
                 "handshake_p99", "resumed_pct")
SUM_FIELDS = ("operations", "successes", "errors", "reset_after_reply", "over_1s",
              "handshakes", "resumed", "resumption_missed", "tls_errors")
# Text, the same in every round if all went as asked: the distinct values.
TEXT_FIELDS = ("tls_version", "tls_cipher")


def from_bench(result):
    """The figures of one salam-bench --json result."""
    latency = result["latency_us"]
    row = {
        "rate": result["rate_per_s"],
        "cpu_us": result.get("server_cpu_us_per_op"),
        "p50": latency["p50"], "p99": latency["p99"], "max": latency["max"],
        "operations": result["operations"], "successes": result["successes"],
        "errors": result["errors"]["total"],
        "reset_after_reply": result["errors"].get("reset_after_reply", 0),
        "over_1s": result["over_1s"],
        "gbit": result["sent_gbit_per_s"],
        "rss_per_conn": result.get("server_rss_per_connection_bytes"),
        "held": result.get("held"),
    }
    if result.get("server_cpu_s") is not None and result["bytes_sent"] > 0:
        row["cpu_s_per_gb"] = result["server_cpu_s"] / (result["bytes_sent"] / 1e9)
    row["upstream_cpu_us"] = result.get("upstream_cpu_us_per_op")
    if result.get("upstream_cpu_s") is not None and result["bytes_sent"] > 0:
        row["upstream_cpu_s_per_gb"] = result["upstream_cpu_s"] / (result["bytes_sent"] / 1e9)
    tls = result.get("tls")
    if tls:
        row.update({
            "tls_version": tls["version"] or None, "tls_cipher": tls["cipher"] or None,
            "handshakes": tls["handshakes"], "resumed": tls["resumed"],
            "resumption_missed": tls["resumption_missed"],
            "resumed_pct": 100 * tls["resumed"] / tls["handshakes"] if tls["handshakes"] else None,
            "handshake_p50": tls["handshake_us"]["p50"] if tls["handshakes"] else None,
            "handshake_p99": tls["handshake_us"]["p99"] if tls["handshakes"] else None,
            "tls_errors": result["errors"].get("tls", 0),
        })
    return row


def medians(runs):
    """runs: the rows of one peer in one workload (None for a failed run)."""
    good = [run for run in runs if run]
    summary = {"rounds": len(good), "failed_rounds": len(runs) - len(good)}
    for name in MEDIAN_FIELDS:
        values = [run[name] for run in good if run.get(name) is not None]
        summary[name] = statistics.median(values) if values else None
    for name in SUM_FIELDS:
        summary[name] = sum(run.get(name) or 0 for run in good)
    for name in TEXT_FIELDS:
        summary[name] = "/".join(sorted({run[name] for run in good if run.get(name)})) or None
    return summary


def fmt(value, spec):
    return "–" if value is None else format(value, spec)


def ratio(value, reference):
    if value is None or not reference:
        return "–"
    return f"{value / reference:.2f}"


def errors_cell(row):
    text = str(row["errors"])
    if row["reset_after_reply"]:
        text += f" ({row['reset_after_reply']} resets after the reply)"
    if row["failed_rounds"]:
        text += f", {row['failed_rounds']} failed rounds"
    return text


def negotiated_cell(row):
    cipher = (row.get("tls_cipher") or "–").replace("TLS_", "")
    return f"{row.get('tls_version') or '–'} {cipher}"


def probe_cell(probe):
    """A handshake as openssl s_client saw it: group, tickets, close."""
    if not probe:
        return "–"
    tickets = f"{probe['tickets']} ticket{'s' if probe['tickets'] != 1 else ''}"
    close = "close_notify" if probe["close_notify"] else "no close_notify"
    return f"{probe['group'] or '?'}, {tickets}, {close}"


def tls_table(workload, reference, rows, probes):
    """The TLS workloads: server CPU per operation first, with what the
    proxies' upstream cost apart, and what each handshake negotiated."""
    ref = rows.get(reference) or {}
    lines = []
    if workload in ("tls-handshake", "tls-resume", "tls-greet"):
        unit = "conn" if workload == "tls-greet" else "handshakes"
        resumed = " resumed % |" if workload == "tls-resume" else ""
        probe = " handshake (s_client) |" if probes else ""
        lines.append(f"| server | {unit}/s | server CPU µs/op | CPU vs {reference} | "
                     f"rate vs {reference} | upstream CPU µs/op | p50 µs | p99 µs | "
                     f"handshake p50 µs |{resumed} negotiated |{probe} errors |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|"
                     + ("---:|" if resumed else "") + "---|" + ("---|" if probe else "") + "---|")
        for name, row in rows.items():
            cells = [name, fmt(row["rate"], ",.0f"), fmt(row["cpu_us"], ".1f"),
                     ratio(row["cpu_us"], ref.get("cpu_us")), ratio(row["rate"], ref.get("rate")),
                     fmt(row["upstream_cpu_us"], ".1f"), fmt(row["p50"], ".0f"),
                     fmt(row["p99"], ".0f"), fmt(row["handshake_p50"], ".0f")]
            if resumed:
                missed = f" ({row['resumption_missed']} MISSED)" if row["resumption_missed"] else ""
                cells.append(fmt(row["resumed_pct"], ".1f") + missed)
            cells.append(negotiated_cell(row))
            if probe:
                cells.append(probe_cell(probes.get(name)))
            cells.append(errors_cell(row))
            lines.append("| " + " | ".join(cells) + " |")
    elif workload == "tls-bulk":
        lines.append(f"| server | Gbit/s | server CPU s per GB | upstream CPU s per GB | "
                     f"Gbit/s vs {reference} | CPU vs {reference} | negotiated | errors |")
        lines.append("|---|---:|---:|---:|---:|---:|---|---|")
        for name, row in rows.items():
            lines.append(f"| {name} | {fmt(row['gbit'], '.2f')} | {fmt(row['cpu_s_per_gb'], '.3f')} "
                         f"| {fmt(row['upstream_cpu_s_per_gb'], '.3f')} "
                         f"| {ratio(row['gbit'], ref.get('gbit'))} "
                         f"| {ratio(row['cpu_s_per_gb'], ref.get('cpu_s_per_gb'))} "
                         f"| {negotiated_cell(row)} | {errors_cell(row)} |")
    elif workload == "tls-hold":
        lines.append(f"| server | held | server RSS bytes per connection | vs {reference} | "
                     f"handshake p50 µs | negotiated | errors |")
        lines.append("|---|---:|---:|---:|---:|---|---|")
        for name, row in rows.items():
            lines.append(f"| {name} | {fmt(row['held'], '.0f')} | {fmt(row['rss_per_conn'], '.0f')} "
                         f"| {ratio(row['rss_per_conn'], ref.get('rss_per_conn'))} | "
                         f"{fmt(row['handshake_p50'], '.0f')} | {negotiated_cell(row)} | "
                         f"{errors_cell(row)} |")
    return "\n".join(lines)


def table(workload, reference, rows, probes=None):
    """Markdown table of one workload. rows: peer name -> medians."""
    if workload.startswith("tls-"):
        return tls_table(workload, reference, rows, probes or {})
    ref = rows.get(reference) or {}
    lines = []
    if workload in ("greet", "banner", "echo"):
        unit = "round trips" if workload == "echo" else "conn"
        lines.append(f"| server | {unit}/s | server CPU µs/op | CPU vs {reference} | "
                     f"rate vs {reference} | p50 µs | p99 µs | errors | ≥1 s |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---|---:|")
        for name, row in rows.items():
            lines.append(
                f"| {name} | {fmt(row['rate'], ',.0f')} | {fmt(row['cpu_us'], '.1f')} | "
                f"{ratio(row['cpu_us'], ref.get('cpu_us'))} | {ratio(row['rate'], ref.get('rate'))} "
                f"| {fmt(row['p50'], '.0f')} | {fmt(row['p99'], '.0f')} | {errors_cell(row)} | "
                f"{row['over_1s']} |")
    elif workload == "bulk":
        lines.append(f"| server | Gbit/s | server CPU s per GB | Gbit/s vs {reference} | errors |")
        lines.append("|---|---:|---:|---:|---|")
        for name, row in rows.items():
            lines.append(f"| {name} | {fmt(row['gbit'], '.2f')} | {fmt(row['cpu_s_per_gb'], '.3f')} "
                         f"| {ratio(row['gbit'], ref.get('gbit'))} | {errors_cell(row)} |")
    elif workload == "hold":
        lines.append(f"| server | held | server RSS bytes per connection | vs {reference} | "
                     f"connect p99 µs | errors |")
        lines.append("|---|---:|---:|---:|---:|---|")
        for name, row in rows.items():
            lines.append(f"| {name} | {fmt(row['held'], '.0f')} | {fmt(row['rss_per_conn'], '.0f')} "
                         f"| {ratio(row['rss_per_conn'], ref.get('rss_per_conn'))} | "
                         f"{fmt(row['p99'], '.0f')} | {errors_cell(row)} |")
    elif workload == "burst":
        lines.append("| server | clients | served | errors | ≥1 s (SYN retransmits) | p50 µs | "
                     "p99 µs | max µs |")
        lines.append("|---|---:|---:|---|---:|---:|---:|---:|")
        for name, row in rows.items():
            lines.append(f"| {name} | {row['operations']} | {row['successes']} | {errors_cell(row)} "
                         f"| {row['over_1s']} | {fmt(row['p50'], '.0f')} | {fmt(row['p99'], '.0f')} "
                         f"| {fmt(row['max'], '.0f')} |")
    return "\n".join(lines)


# One chart panel per workload: the figure that tells servers apart.
PANELS = (("greet", "cpu_us", "greet: server CPU µs/conn"),
          ("banner", "cpu_us", "banner: server CPU µs/conn"),
          ("echo", "cpu_us", "echo: server CPU µs/round trip"),
          ("bulk", "gbit", "bulk: Gbit/s"),
          ("hold", "rss_per_conn", "hold: server bytes/idle conn"),
          ("burst", "over_1s", "burst: clients stalled ≥1 s"),
          ("tls-handshake", "cpu_us", "tls-handshake: server CPU µs/full handshake"),
          ("tls-resume", "cpu_us", "tls-resume: server CPU µs/resumed handshake"),
          ("tls-greet", "cpu_us", "tls-greet: server CPU µs/conn"),
          ("tls-bulk", "gbit", "tls-bulk: Gbit/s"),
          ("tls-hold", "rss_per_conn", "tls-hold: server bytes/idle TLS conn"))


def chart(all_rows, png):
    """Bar charts, one panel per workload measured. Returns False without gnuplot."""
    if shutil.which("gnuplot") is None:
        return False
    panels = [(w, f, t) for w, f, t in PANELS
              if w in all_rows and any(r.get(f) is not None for r in all_rows[w].values())]
    if not panels:
        return False
    with tempfile.TemporaryDirectory(prefix="salam-chart-") as scratch:
        columns = min(3, len(panels))
        rows = (len(panels) + columns - 1) // columns
        script = [f"set terminal pngcairo size {460 * columns},{420 * rows} font ',9' noenhanced",
                  f"set output '{png}'",
                  f"set multiplot layout {rows},{columns}",
                  "set style fill solid 0.7 border -1", "set boxwidth 0.7",
                  "set yrange [0:*]", "set xtics rotate by -40 nomirror", "unset key",
                  "set grid ytics"]
        for index, (workload, field, title) in enumerate(panels):
            data = Path(scratch) / f"{index}.dat"
            with open(data, "w") as out:
                for name, row in all_rows[workload].items():
                    value = row.get(field)
                    out.write(f'"{name}" {value if value is not None else 0}\n')
            script += [f"set title '{title}'",
                       f"plot '{data}' using 0:2:xtic(1) with boxes lc rgb '#4a7ab5', "
                       f"'' using 0:2:(sprintf($2 >= 100 ? '%.0f' : '%.3g', $2)) with labels offset 0,0.7"]
        script.append("unset multiplot")
        done = subprocess.run(["gnuplot"], input="\n".join(script), text=True,
                              capture_output=True)
        if done.returncode != 0:
            print(f"gnuplot failed: {done.stderr.strip()}")
            return False
    return True
