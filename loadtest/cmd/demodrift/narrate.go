package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// narrator prints the story: one timestamped line per event, and progress bars that redraw
// in place on a terminal but print one line per tenth of the way in a log.
type narrator struct {
	w     io.Writer
	tty   bool
	start time.Time
	// bar is the label of the bar being drawn on a terminal ("" when none); step the last
	// tenth printed of the current bar in a log.
	bar  string
	step map[string]int
}

func newNarrator(f *os.File) *narrator {
	fi, err := f.Stat()
	return &narrator{w: f, tty: err == nil && fi.Mode()&os.ModeCharDevice != 0 && os.Getenv("TERM") != "dumb",
		start: time.Now(), step: map[string]int{}}
}

func (n *narrator) stamp() string {
	d := time.Since(n.start).Round(time.Second)
	return fmt.Sprintf("[%2d:%02d]", int(d.Minutes()), int(d.Seconds())%60)
}

// say prints one line of the story.
func (n *narrator) say(format string, args ...any) {
	if n.bar != "" {
		fmt.Fprintln(n.w)
		n.bar = ""
	}
	fmt.Fprintf(n.w, "%s %s\n", n.stamp(), fmt.Sprintf(format, args...))
}

// progress shows done of total for label.
func (n *narrator) progress(label string, done, total int) {
	if total <= 0 {
		return
	}
	done = min(max(done, 0), total)
	frac := float64(done) / float64(total)
	if !n.tty {
		tenth := int(frac * 10)
		if last, ok := n.step[label]; ok && tenth <= last {
			return
		}
		n.step[label] = tenth
		fmt.Fprintf(n.w, "%s %s: %d/%d (%d%%)\n", n.stamp(), label, done, total, int(frac*100))
		return
	}
	const width = 30
	fill := int(frac * width)
	fmt.Fprintf(n.w, "\r%s %-22s [%s%s] %d/%d", n.stamp(), label, strings.Repeat("#", fill), strings.Repeat(".", width-fill), done, total)
	n.bar = label
	if done == total {
		fmt.Fprintln(n.w)
		n.bar = ""
	}
}
