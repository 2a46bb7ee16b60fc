package checker

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// LogPatterns are the strings NodeLogs looks for: a Go panic, a report of
// the race detector, a fatal runtime error.
var LogPatterns = []string{"panic:", "DATA RACE", "fatal error:"}

// NodeLogs scans node (and participant) log files for LogPatterns. Each
// matching line is a violation referenced as "file:line" (file relative
// to its directory). A file that cannot be read is a violation too.
func NodeLogs(paths []string, o Options) Verdict {
	c := newCollector(NameNodeLogs, o)
	if len(paths) == 0 {
		return c.skip("no log files")
	}
	for _, p := range paths {
		c.count("files", 1)
		name := filepath.Base(p)
		f, err := os.Open(p)
		if err != nil {
			c.add(0, refs(name), "cannot read %s: %v", name, err)
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		line := 0
		for sc.Scan() {
			line++
			text := sc.Text()
			for _, pat := range LogPatterns {
				if strings.Contains(text, pat) {
					if len(text) > 200 {
						text = text[:200] + "…"
					}
					c.add(0, refs(fmt.Sprintf("%s:%d", name, line)), "%s:%d: %s", name, line, strings.TrimSpace(text))
					break
				}
			}
		}
		if err := sc.Err(); err != nil {
			c.add(0, refs(name), "reading %s: %v", name, err)
		}
		c.count("lines", int64(line))
		f.Close()
	}
	return c.verdict()
}
