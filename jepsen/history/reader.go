package history

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// maxLine bounds one history line.
const maxLine = 4 << 20

// Read loads one history file.
func Read(r io.Reader) (*History, error) {
	var b builder
	torn, err := readInto(&b, r, "history")
	if err != nil {
		return nil, err
	}
	h := b.history()
	h.Truncated = torn
	return h, nil
}

// ReadFile loads the history file at path.
func ReadFile(path string) (*History, error) {
	return ReadFiles(path)
}

// ReadFiles loads and merges several history files (the harness's and
// each participant's).
func ReadFiles(paths ...string) (*History, error) {
	var b builder
	torn := false
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("history: %w", err)
		}
		t, err := readInto(&b, f, p)
		f.Close()
		if err != nil {
			return nil, err
		}
		torn = torn || t
	}
	h := b.history()
	h.Truncated = torn
	return h, nil
}

// Files returns the history files of a run directory: FileName first, then
// every ParticipantFileName, sorted. It is an error when FileName is
// missing.
func Files(dir string) ([]string, error) {
	main := filepath.Join(dir, FileName)
	if _, err := os.Stat(main); err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	others, err := filepath.Glob(filepath.Join(dir, "history-*.jsonl"))
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	slices.Sort(others)
	return append([]string{main}, others...), nil
}

// ReadDir loads and merges the history files of a run directory.
func ReadDir(dir string) (*History, error) {
	files, err := Files(dir)
	if err != nil {
		return nil, err
	}
	return ReadFiles(files...)
}

// readInto adds every record of r to b. A last line without its newline
// that does not parse is a torn write of a killed process: it is skipped
// and reported as torn. Any other bad line is an error naming its line.
func readInto(b *builder, r io.Reader, name string) (torn bool, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	for line := 1; ; line++ {
		data, err := br.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return false, fmt.Errorf("history: %s: %w", name, err)
		}
		complete := len(data) > 0 && data[len(data)-1] == '\n'
		if len(data) > maxLine {
			return false, fmt.Errorf("history: %s:%d: line longer than %d bytes", name, line, maxLine)
		}
		if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 {
			var rec Record
			if jerr := json.Unmarshal(trimmed, &rec); jerr != nil {
				if !complete {
					return true, nil
				}
				return false, fmt.Errorf("history: %s:%d: %v", name, line, jerr)
			}
			if aerr := b.add(rec); aerr != nil {
				return false, fmt.Errorf("history: %s:%d: %v", name, line, aerr)
			}
		}
		if err != nil { // io.EOF
			return false, nil
		}
	}
}
