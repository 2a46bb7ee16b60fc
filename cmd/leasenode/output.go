package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/transport"
)

// Output: -o table (the default) is for people; -o json prints one JSON
// document per line with the HTTP API's field names (transport's wire
// types), for scripts.

// printJSON writes v as one line of JSON.
func printJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

func (g *globalFlags) printLease(l raftlease.Lease) error {
	if g.json() {
		return printJSON(g.stdout, transport.FromLease(l))
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "name:\t%s\n", l.Name)
	fmt.Fprintf(tw, "holder:\t%s\n", l.Holder)
	fmt.Fprintf(tw, "token:\t%d\n", l.Token)
	fmt.Fprintf(tw, "ttl:\t%v\n", l.TTL)
	fmt.Fprintf(tw, "remaining:\t%v\n", l.Remaining.Round(time.Millisecond))
	if !l.AcquiredAt.IsZero() {
		fmt.Fprintf(tw, "acquired at:\t%s\n", l.AcquiredAt.Local().Format(time.RFC3339Nano))
	}
	fmt.Fprintf(tw, "revision:\t%d\n", l.Revision)
	if len(l.Metadata) > 0 {
		fmt.Fprintf(tw, "metadata:\t%s\n", formatMetadata(l.Metadata))
	}
	return tw.Flush()
}

func formatMetadata(md map[string]string) string {
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + md[k]
	}
	return strings.Join(parts, ",")
}

func (g *globalFlags) printList(ll raftlease.LeaseList) error {
	if g.json() {
		return printJSON(g.stdout, transport.FromLeaseList(ll))
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tHOLDER\tTOKEN\tTTL\tREMAINING\tREVISION\tMETADATA")
	for _, l := range ll.Leases {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%v\t%v\t%d\t%s\n", l.Name, l.Holder, l.Token, l.TTL, l.Remaining.Round(time.Millisecond), l.Revision, formatMetadata(l.Metadata))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	noun := "leases"
	if len(ll.Leases) == 1 {
		noun = "lease"
	}
	_, err := fmt.Fprintf(g.stdout, "(%d %s at revision %d)\n", len(ll.Leases), noun, ll.Revision)
	return err
}

func (g *globalFlags) printEvent(ev raftlease.Event) error {
	if g.json() {
		return printJSON(g.stdout, transport.FromEvent(ev))
	}
	l := ev.Lease
	line := fmt.Sprintf("%s rev=%d %-9s %s holder=%s token=%d", time.Now().Format("15:04:05.000"), ev.Revision, ev.Type, l.Name, l.Holder, l.Token)
	if ev.Type == raftlease.EventAcquired || ev.Type == raftlease.EventRenewed {
		line += fmt.Sprintf(" ttl=%v", l.TTL)
	}
	if len(l.Metadata) > 0 {
		line += " metadata=" + formatMetadata(l.Metadata)
	}
	_, err := fmt.Fprintln(g.stdout, line)
	return err
}

func (g *globalFlags) printStatus(st transport.StatusJSON) error {
	if g.json() {
		return printJSON(g.stdout, st)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "node:\t%s\n", st.ID)
	state := st.State
	if st.Serving {
		state += " (serving)"
	}
	fmt.Fprintf(tw, "state:\t%s\n", state)
	if st.Leader != nil {
		fmt.Fprintf(tw, "leader:\t%s at %s\n", st.Leader.ID, st.Leader.HTTPAddr)
	} else {
		fmt.Fprintf(tw, "leader:\tnone\n")
	}
	fmt.Fprintf(tw, "term:\t%d\n", st.Term)
	fmt.Fprintf(tw, "index:\tcommit %d, applied %d, last %d\n", st.CommitIndex, st.AppliedIndex, st.LastIndex)
	fmt.Fprintf(tw, "leases:\t%d (highest token %d)\n", st.Leases, st.LastToken)
	fmt.Fprintf(tw, "epochs:\t%d, expirations %d\n", st.Epochs, st.Expirations)
	fmt.Fprintf(tw, "worst-case failover delay:\t%v\n", time.Duration(st.WorstCaseFailoverDelayMs)*time.Millisecond)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(g.stdout)
	return g.printMembers(st, false)
}

// membersJSON is the -o json form of `members list`.
type membersJSON struct {
	Members []transport.MemberJSON `json:"members"`
	Leader  *transport.LeaderJSON  `json:"leader"`
}

func (g *globalFlags) printMembers(st transport.StatusJSON, asJSON bool) error {
	if asJSON {
		return printJSON(g.stdout, membersJSON{Members: st.Members, Leader: st.Leader})
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tRAFT ADDR\tHTTP ADDR\tVOTER\tLEADER")
	for _, m := range st.Members {
		leader := ""
		if st.Leader != nil && st.Leader.ID == m.ID {
			leader = "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\n", m.ID, m.RaftAddr, orDash(m.HTTPAddr), m.Voter, leader)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (g *globalFlags) printRestore(r transport.RestoreReportJSON) error {
	if g.json() {
		return printJSON(g.stdout, r)
	}
	fmt.Fprintf(g.stdout, "imported %d leases; every token is now above %d\n", r.Imported, r.TokenFloor)
	for _, s := range r.Skipped {
		fmt.Fprintf(g.stdout, "skipped %s: %s\n", s.Name, s.Reason)
	}
	return nil
}

// printError reports a failed operation: on stderr for people, and in -o
// json mode also on stdout as the API's error document.
func (g *globalFlags) printError(err error) {
	if g.json() {
		body, _ := transport.NewErrorJSON(err)
		_ = printJSON(g.stdout, body)
	}
}
