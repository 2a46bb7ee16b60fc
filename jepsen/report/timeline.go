package report

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/raftlease/raftlease/jepsen/checker"
	"github.com/raftlease/raftlease/jepsen/history"
)

// Timeline geometry, in SVG pixels.
const (
	labelWidth = 150
	plotWidth  = 1100
	rowHeight  = 28
	topMargin  = 30
)

// WriteTimelineFile writes the timeline of a run to path.
func WriteTimelineFile(path string, h *history.History, r Results) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	bw := bufio.NewWriter(f)
	err = WriteTimeline(bw, h, r)
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// WriteTimeline writes a self-contained HTML page holding one SVG (no
// scripts, no external styles): a row for the nemesis, one per participant
// (its terms as leader coloured by token; its fenced writes as ticks:
// green accepted, orange rejected as stale, red violating, grey unfenced;
// paused or killed stretches hatched) and one per node (leader, follower,
// candidate from the status samples; down or paused from the nemesis), the
// nemesis windows as bands across every row, and a time axis in seconds
// from the start of the run. Every shape has a tooltip.
func WriteTimeline(w io.Writer, h *history.History, r Results) error {
	t := newTimeline(h, r)
	t.draw()
	fmt.Fprintf(w, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>%s</title></head>\n", esc(r.Summary))
	fmt.Fprintf(w, "<body style=\"font-family:sans-serif;margin:16px\">\n<h3 style=\"font-weight:normal\">%s</h3>\n", esc(r.Summary))
	_, err := io.WriteString(w, t.b.String()+"\n</body></html>\n")
	return err
}

type timeline struct {
	h          *history.History
	r          Results
	start, end int64
	b          strings.Builder
	windows    []checker.Window
	violating  map[string]bool
	rows       int
}

func newTimeline(h *history.History, r Results) *timeline {
	t := &timeline{h: h, r: r, start: h.Start(), end: h.End(), windows: checker.NemesisWindows(h), violating: map[string]bool{}}
	if t.end <= t.start {
		t.end = t.start + int64(time.Second)
	}
	for _, v := range r.Verdicts {
		if v.Name != checker.NameFencedExclusion {
			continue
		}
		// Each fenced-exclusion violation names the offending write last.
		for _, viol := range v.Violations {
			if n := len(viol.Refs); n > 0 {
				t.violating[viol.Refs[n-1]] = true
			}
		}
	}
	return t
}

func esc(s string) string { return html.EscapeString(s) }

func (t *timeline) x(at int64) float64 {
	f := float64(at-t.start) / float64(t.end-t.start)
	return labelWidth + math.Max(0, math.Min(1, f))*plotWidth
}

func (t *timeline) rowY(row int) float64 { return topMargin + float64(row)*rowHeight }

func (t *timeline) rel(at int64) string {
	return fmt.Sprintf("t+%.3fs", float64(at-t.start)/1e9)
}

func (t *timeline) rect(class string, x0, x1, y, height float64, fill, title string, extra string) {
	width := math.Max(x1-x0, 1)
	fmt.Fprintf(&t.b, `<rect class="%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"%s><title>%s</title></rect>`+"\n",
		class, x0, y, width, height, fill, extra, esc(title))
}

func (t *timeline) text(x, y float64, anchor, size, s string) {
	fmt.Fprintf(&t.b, `<text x="%.1f" y="%.1f" text-anchor="%s" font-size="%s">%s</text>`+"\n", x, y, anchor, size, esc(s))
}

// tokenColour gives each token its own hue.
func tokenColour(token uint64) string {
	return fmt.Sprintf("hsl(%d,65%%,55%%)", int(math.Mod(float64(token)*137.508, 360)))
}

func (t *timeline) participants() []string {
	ids := slices.Clone(t.r.Config.Participants)
	for _, e := range t.h.Participants {
		ids = append(ids, e.Participant)
	}
	for _, w := range t.h.Writes {
		ids = append(ids, w.Writer)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

func (t *timeline) nodes() []string {
	ids := slices.Clone(t.r.Config.Nodes)
	for _, s := range t.h.Statuses {
		ids = append(ids, s.Node)
	}
	for _, f := range t.h.Finals {
		ids = append(ids, f.Node)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

func (t *timeline) draw() {
	parts, nodes := t.participants(), t.nodes()
	t.rows = 1 + len(parts) + len(nodes)
	height := t.rowY(t.rows) + 90
	fmt.Fprintf(&t.b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%.0f" viewBox="0 0 %d %.0f" font-family="sans-serif">`+"\n",
		labelWidth+plotWidth+20, height, labelWidth+plotWidth+20, height)
	fmt.Fprintf(&t.b, `<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="3" height="6" fill="#555"/></pattern></defs>`+"\n")
	t.bands()
	t.nemesisRow()
	for i, p := range parts {
		t.participantRow(1+i, p)
	}
	for i, n := range nodes {
		t.nodeRow(1+len(parts)+i, n)
	}
	t.axis()
	t.legend(t.rowY(t.rows) + 40)
	t.b.WriteString("</svg>")
}

func (t *timeline) bands() {
	top, bottom := t.rowY(0), t.rowY(t.rows)
	for _, w := range t.windows {
		t.rect("band", t.x(w.Start), t.x(w.Stop), top, bottom-top, "#f5a623",
			t.windowTitle(w), ` fill-opacity="0.12"`)
	}
}

func (t *timeline) windowTitle(w checker.Window) string {
	s := fmt.Sprintf("step %d %s", w.Step, w.Kind)
	if w.Detail != "" {
		s += " (" + w.Detail + ")"
	} else if len(w.Targets) > 0 {
		s += " " + strings.Join(w.Targets, ",")
	}
	return s + " " + t.rel(w.Start) + ".." + t.rel(w.Stop)
}

func (t *timeline) label(row int, s string) {
	t.text(labelWidth-8, t.rowY(row)+rowHeight/2+4, "end", "12", s)
	fmt.Fprintf(&t.b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/>`+"\n", labelWidth, t.rowY(row+1), labelWidth+plotWidth, t.rowY(row+1))
}

func (t *timeline) nemesisRow() {
	t.label(0, "nemesis")
	y := t.rowY(0) + 4
	for _, w := range t.windows {
		x0, x1 := t.x(w.Start), t.x(w.Stop)
		t.rect("nemesis", x0, x1, y, rowHeight-8, "#f5a623", t.windowTitle(w), "")
		if x1-x0 > 40 {
			t.text(x0+3, y+13, "start", "10", w.Kind)
		}
	}
}

// overlay hatches the stretches when a nemesis step had id down or paused.
func (t *timeline) overlay(row int, id string) {
	for _, w := range t.windows {
		if !slices.Contains(w.Targets, id) {
			continue
		}
		var what string
		switch {
		case strings.HasPrefix(w.Kind, "pause"):
			what = "paused"
		case strings.HasPrefix(w.Kind, "kill"), strings.HasPrefix(w.Kind, "sigterm"):
			what = "down"
		case strings.HasPrefix(w.Kind, "rolling"):
			what = "restarting"
		default:
			continue
		}
		t.rect(what, t.x(w.Start), t.x(w.Stop), t.rowY(row)+2, rowHeight-4, "url(#hatch)",
			fmt.Sprintf("%s %s (%s) %s..%s", id, what, w.Kind, t.rel(w.Start), t.rel(w.Stop)), ` fill-opacity="0.5"`)
	}
}

func (t *timeline) participantRow(row int, id string) {
	t.label(row, id)
	y := t.rowY(row)
	// terms as leader
	var open *history.ParticipantEvent
	closeTerm := func(at int64) {
		if open == nil {
			return
		}
		t.rect("lead", t.x(open.Time), t.x(at), y+3, 13, tokenColour(open.Token),
			fmt.Sprintf("%s leads %s with token %d, %s..%s", id, open.Name, open.Token, t.rel(open.Time), t.rel(at)), "")
		if t.x(at)-t.x(open.Time) > 24 {
			t.text(t.x(open.Time)+2, y+13, "start", "9", fmt.Sprint(open.Token))
		}
		open = nil
	}
	for i, e := range t.h.Participants {
		if e.Participant != id {
			continue
		}
		switch e.Event {
		case history.Gained:
			closeTerm(e.Time)
			open = &t.h.Participants[i]
		case history.Lost:
			closeTerm(e.Time)
		}
	}
	closeTerm(t.end)
	t.overlay(row, id)
	// writes
	for _, w := range t.h.Writes {
		if w.Writer != id {
			continue
		}
		class, fill, y0, hgt := "", "", y+18, 7.0
		switch {
		case t.violating[w.Ref()]:
			class, fill, y0, hgt = "write violating", "#d50000", y+1, rowHeight-2
		case !w.Fenced:
			class, fill, y0, hgt = "write unfenced", "#9e9e9e", y+23, 4
		case w.Accepted:
			class, fill = "write accepted", "#2e7d32"
		default:
			class, fill = "write rejected", "#ef6c00"
		}
		kind := "fenced"
		if !w.Fenced {
			kind = "unfenced"
		}
		t.rect(class, t.x(w.Time), t.x(w.Time)+1, y0, hgt, fill,
			fmt.Sprintf("%s: %s %s write, token %d, highest %d, accepted=%t, %s", w.Ref(), id, kind, w.Token, w.Highest, w.Accepted, t.rel(w.Time)), "")
	}
}

// A node sampled down or paused is hatched, as a nemesis window that
// stopped or paused it is.
var stateColours = map[string]string{"leader": "#1565c0", "follower": "#90caf9", "candidate": "#fbc02d",
	"down": "url(#hatch)", "paused": "url(#hatch)"}

func (t *timeline) nodeRow(row int, id string) {
	t.label(row, id)
	y := t.rowY(row)
	var samples []history.NodeStatus
	for _, s := range t.h.Statuses {
		if s.Node == id {
			samples = append(samples, s)
		}
	}
	for i, s := range samples {
		next := t.end
		if i+1 < len(samples) {
			next = samples[i+1].Time
		}
		state := strings.ToLower(s.State)
		fill, ok := stateColours[state]
		if !ok {
			fill = "#e0e0e0"
		}
		t.rect("node-"+state, t.x(s.Time), t.x(next), y+4, rowHeight-8, fill,
			fmt.Sprintf("%s %s term %d applied %d (leader %s) %s..%s", id, s.State, s.Term, s.AppliedIndex, s.Leader, t.rel(s.Time), t.rel(next)), "")
	}
	t.overlay(row, id)
}

func (t *timeline) axis() {
	y := t.rowY(t.rows)
	fmt.Fprintf(&t.b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#333"/>`+"\n", labelWidth, y, labelWidth+plotWidth, y)
	span := time.Duration(t.end - t.start)
	step := time.Second
	for _, s := range []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute, 5 * time.Minute, 10 * time.Minute} {
		step = s
		if span/s <= 15 {
			break
		}
	}
	if span < 2*time.Second {
		step = 100 * time.Millisecond
	}
	for d := time.Duration(0); d <= span; d += step {
		x := t.x(t.start + int64(d))
		fmt.Fprintf(&t.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/>`+"\n", x, y, x, y+5)
		t.text(x, y+17, "middle", "10", fmt.Sprintf("%gs", d.Seconds()))
	}
}

func (t *timeline) legend(y float64) {
	items := []struct{ fill, name string }{
		{"#1565c0", "leader"}, {"#90caf9", "follower"}, {"#fbc02d", "candidate"}, {"url(#hatch)", "down / paused"},
		{"#2e7d32", "fenced write accepted"}, {"#ef6c00", "fenced write rejected (stale)"}, {"#d50000", "violating write"},
		{"#9e9e9e", "unfenced write"}, {"#f5a623", "nemesis"}, {tokenColour(1), "leadership, coloured by token"},
	}
	x := float64(labelWidth)
	for _, it := range items {
		w := 22 + float64(len(it.name))*6.2
		if x > labelWidth && x+w > labelWidth+plotWidth {
			x, y = labelWidth, y+18 // wrap before an item that would not fit
		}
		fmt.Fprintf(&t.b, `<rect x="%.1f" y="%.1f" width="12" height="12" fill="%s"/>`+"\n", x, y, it.fill)
		t.text(x+16, y+10, "start", "11", it.name)
		x += w
	}
}
