package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/raftlease/raftlease/transport"
)

func cmdStatus(g *globalFlags, args []string) error {
	fs := g.commandFlags("status", true)
	pos, err := g.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("status: unexpected argument %q", pos[0])
	}
	c, err := g.newClient()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := g.opContext()
	defer cancel()
	st, err := c.Status(ctx)
	if err != nil {
		return g.report(err)
	}
	return g.printStatus(st)
}

// cmdMembers: members list | add ID --raft-addr A [--http-addr H]
// [--non-voter] | remove ID.
func cmdMembers(g *globalFlags, args []string) error {
	if len(args) == 0 {
		return usagef("members: want list, add or remove")
	}
	sub, args := args[0], args[1:]
	fs := g.commandFlags("members "+sub, true)
	var raftAddr, httpAddr string
	var nonVoter bool
	if sub == "add" {
		fs.StringVar(&raftAddr, "raft-addr", "", "the new member's Raft address, host:port (required)")
		fs.StringVar(&httpAddr, "http-addr", "", "the new member's HTTP API address, host:port")
		fs.BoolVar(&nonVoter, "non-voter", false, "add a non-voting member (replicates, does not vote)")
	}
	pos, err := g.parse(fs, args)
	if err != nil {
		return err
	}
	switch sub {
	case "list":
		if len(pos) > 0 {
			return usagef("members list: unexpected argument %q", pos[0])
		}
	case "add", "remove":
		if len(pos) != 1 {
			return usagef("members %s: want exactly one member ID", sub)
		}
	default:
		return usagef("members: unknown subcommand %q (want list, add or remove)", sub)
	}
	if sub == "add" {
		if raftAddr == "" {
			return usagef("members add: --raft-addr is required")
		}
		if err := checkHostPort("raft-addr", raftAddr); err != nil {
			return err
		}
		if httpAddr != "" {
			if err := checkHostPort("http-addr", httpAddr); err != nil {
				return err
			}
		}
	}
	c, err := g.newClient()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := g.opContext()
	defer cancel()
	switch sub {
	case "list":
		st, err := c.Status(ctx)
		if err != nil {
			return g.report(err)
		}
		return g.printMembers(st, g.json())
	case "add":
		m := transport.MemberJSON{ID: pos[0], RaftAddr: raftAddr, HTTPAddr: httpAddr, Voter: !nonVoter}
		if err := c.AddMember(ctx, m); err != nil {
			return g.report(err)
		}
		if g.json() {
			return printJSON(g.stdout, m)
		}
		_, err := fmt.Fprintf(g.stdout, "added %s (raft %s, voter %v)\n", m.ID, m.RaftAddr, m.Voter)
		return err
	default:
		if err := c.RemoveMember(ctx, pos[0]); err != nil {
			return g.report(err)
		}
		if g.json() {
			return printJSON(g.stdout, map[string]any{"removed": pos[0]})
		}
		_, err := fmt.Fprintf(g.stdout, "removed %s\n", pos[0])
		return err
	}
}

// cmdSnapshot: snapshot save FILE | restore FILE ("-" is stdout or stdin).
func cmdSnapshot(g *globalFlags, args []string) error {
	if len(args) == 0 {
		return usagef("snapshot: want save FILE or restore FILE")
	}
	sub, args := args[0], args[1:]
	fs := g.commandFlags("snapshot "+sub, true)
	pos, err := g.parse(fs, args)
	if err != nil {
		return err
	}
	if sub != "save" && sub != "restore" {
		return usagef("snapshot: unknown subcommand %q (want save or restore)", sub)
	}
	if len(pos) != 1 {
		return usagef("snapshot %s: want exactly one FILE (- for std%s)", sub, map[string]string{"save": "out", "restore": "in"}[sub])
	}
	file := pos[0]
	c, err := g.newClient()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := g.opContext()
	defer cancel()
	if sub == "restore" {
		var r io.Reader = os.Stdin
		if file != "-" {
			f, err := os.Open(file)
			if err != nil {
				return usagef("snapshot restore: %v", err)
			}
			defer f.Close()
			r = f
		}
		report, err := c.RestoreSnapshot(ctx, r)
		if err != nil {
			return g.report(err)
		}
		return g.printRestore(report)
	}
	if file == "-" {
		_, err := c.SaveSnapshot(ctx, g.stdout)
		return g.report(err)
	}
	// Write next to the target and rename, so a failed save never leaves
	// a truncated file under the name.
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".*")
	if err != nil {
		return usagef("snapshot save: %v", err)
	}
	defer os.Remove(tmp.Name())
	n, err := c.SaveSnapshot(ctx, tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return g.report(err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return err
	}
	if g.json() {
		return printJSON(g.stdout, map[string]any{"file": file, "bytes": n})
	}
	_, err = fmt.Fprintf(g.stdout, "saved %d bytes to %s\n", n, file)
	return err
}
