// Command leasenode is raftlease's daemon and command-line tool.
//
//	leasenode agent --id n1 --data-dir /var/lib/leasenode --bootstrap    a cluster member
//	leasenode dev                                                      a throw-away single node
//	leasenode acquire|renew|release|get|list|watch ...                 lease operations
//	leasenode status | members ... | snapshot save|restore FILE        administration
//	leasenode campaign NAME                                            take part in an election
//	leasenode run NAME -- CMD ARGS...                                  run CMD while holding a lease
//
// main is wiring only (STYLE rule 4): it parses and checks flags, builds
// the node, the HTTP handler, the client or the elector from the packages
// that own their logic, runs until done or signalled, and shuts down in
// reverse order. docs/leasenode.md is the operator guide.
//
// Exit statuses: 0 success; 1 the cluster refused the operation (409
// lease_held / not_holder, 404 not_found); 2 usage error or invalid
// argument (400); 3 cluster unavailable (503, unreachable, timed out); 4
// unauthorized (401); 5 any other error; `run` exits with CMD's status,
// 128+N when CMD died of signal N, and 75 when the lease was lost and CMD
// was stopped.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// Exit statuses (documented in docs/leasenode.md).
const (
	exitOK          = 0
	exitRefused     = 1
	exitUsage       = 2
	exitUnavailable = 3
	exitUnauth      = 4
	exitOther       = 5
	// exitLeaseLost: `run` stopped CMD because the lease was lost (or its
	// renewal was overdue). EX_TEMPFAIL: trying again later may work.
	exitLeaseLost = 75
	// exitInterrupted: `run` was interrupted before CMD started (128+SIGINT).
	exitInterrupted = 130
	// exitCannotRun and exitNotFound: `run` could not start CMD, or found
	// no such command (as env, nohup and timeout report it).
	exitCannotRun = 126
	exitNotFound  = 127
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(g *globalFlags, args []string) error
	// client commands take the global client flags.
	client bool
}

var commands = []command{
	{name: "agent", summary: "run a cluster member (every flag also reads LEASENODE_<FLAG>, e.g. LEASENODE_DATA_DIR)", run: func(_ *globalFlags, a []string) error { return cmdAgent(a) }},
	{name: "dev", summary: "run a throw-away single node on " + defaultHTTPAddr, run: func(_ *globalFlags, a []string) error { return cmdDev(a) }},
	{name: "acquire", summary: "acquire a lease: acquire NAME --holder H [--ttl 10s] [--meta k=v ...]", run: cmdAcquire, client: true},
	{name: "renew", summary: "renew a lease: renew NAME --holder H --token T [--ttl D]", run: cmdRenew, client: true},
	{name: "release", summary: "release a lease: release NAME --holder H --token T", run: cmdRelease, client: true},
	{name: "get", summary: "read a lease: get NAME [--stale]", run: cmdGet, client: true},
	{name: "list", summary: "list leases: list [--prefix P] [--stale]", run: cmdList, client: true},
	{name: "watch", summary: "print lease changes until interrupted: watch [NAME | --prefix P]", run: cmdWatch, client: true},
	{name: "status", summary: "show a node's Raft state, leader and members", run: cmdStatus, client: true},
	{name: "members", summary: "members list | add ID --raft-addr A [--http-addr H] [--non-voter] | remove ID", run: cmdMembers, client: true},
	{name: "snapshot", summary: "snapshot save FILE | restore FILE", run: cmdSnapshot, client: true},
	{name: "campaign", summary: "take part in an election, printing each change: campaign NAME [--holder H] [--ttl D] [--profile fast|balanced|low]", run: cmdCampaign, client: true},
	{name: "run", summary: "run a command while holding a lease: run NAME [--holder H] [--ttl 10s] [--grace 2s] -- CMD ARGS...", run: cmdRun, client: true},
	{name: "migrate", summary: "copy live leases from Redis into the cluster, tokens above Redis's: migrate --from-redis redis://H:P [--prefix P] [--dry-run] --addr CLUSTER", run: cmdMigrate, client: true},
	{name: "check-data", summary: "verify a stopped node's data dir (bolt pages, snapshot checksums, log continuity): check-data --data-dir DIR", run: cmdCheckData},
	{name: "bench", summary: "measure ops/s, p50, p99: bench --addr CLUSTER|redis://H:P|etcd://H:P [--workload acquire-release,renew] [--callers 1,16,64] [--duration 5s]", run: cmdBench, client: true},
}

func main() {
	os.Exit(mainStatus(os.Args[1:], os.Stdout, os.Stderr))
}

// mainStatus runs the command line and returns the exit status.
func mainStatus(args []string, stdout, stderr io.Writer) int {
	g := newGlobalFlags(os.Getenv)
	pre := newFlagSet("leasenode")
	g.register(pre)
	if err := g.env(pre); err != nil {
		fmt.Fprintln(stderr, "leasenode:", err)
		return exitUsage
	}
	if err := g.parsePre(pre, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
			return exitOK
		}
		fmt.Fprintln(stderr, "leasenode:", err)
		usage(stderr)
		return exitUsage
	}
	rest := pre.Args()
	if len(rest) == 0 {
		usage(stderr)
		return exitUsage
	}
	name, cmdArgs := rest[0], rest[1:]
	if name == "help" {
		usage(stdout)
		return exitOK
	}
	var cmd *command
	for i := range commands {
		if commands[i].name == name {
			cmd = &commands[i]
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "leasenode: unknown command %q\n", name)
		usage(stderr)
		return exitUsage
	}
	if !cmd.client {
		if set := setFlags(pre); len(set) > 0 {
			fmt.Fprintf(stderr, "leasenode %s: --%s is a client flag, not one of %s\n", name, set[0], name)
			return exitUsage
		}
	}
	g.stdout, g.stderr = stdout, stderr
	err := cmd.run(g, cmdArgs)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stdout, "leasenode %s: %s\n\nflags:\n", cmd.name, cmd.summary)
		var he *helpError
		if errors.As(err, &he) {
			he.printDefaults(stdout)
		}
		return exitOK
	}
	status := exitStatus(err)
	if err != nil && !quiet(err) {
		// Messages may already name the command; say it once.
		msg := strings.ReplaceAll(err.Error(), "\n"+name+": ", "\n")
		msg = strings.TrimPrefix(msg, name+": ")
		fmt.Fprintf(stderr, "leasenode %s: %s\n", name, msg)
		var ue *usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "see 'leasenode %s --help' and docs/leasenode.md\n", name)
		}
	}
	return status
}

func setFlags(fs *flag.FlagSet) []string {
	var out []string
	fs.Visit(func(f *flag.Flag) { out = append(out, f.Name) })
	sort.Strings(out)
	return out
}

func usage(w io.Writer) {
	var b strings.Builder
	b.WriteString("usage: leasenode [global flags] COMMAND [flags] [args]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-9s %s\n", c.name, c.summary)
	}
	b.WriteString(`
global flags (client commands; before or after the command):
  --addr host:port,...     cluster endpoints (env LEASENODE_ADDR; default ` + defaultHTTPAddr + `)
  --auth-token T           bearer token (env LEASENODE_AUTH_TOKEN); --token on commands
                           without a fencing --token
  --auth-token-file F      file whose first token is used (env LEASENODE_AUTH_TOKEN_FILE)
  --tls-ca F, --tls-cert F, --tls-key F, --tls-server-name N
  -o table|json            output format (env LEASENODE_OUTPUT)
  --timeout D              bound on one operation (default 10s)

exit status: 0 ok, 1 refused (409/404), 2 usage or invalid argument, 3 unavailable,
4 unauthorized, 5 other error; run: CMD's status, 75 lease lost, 130 interrupted.
See docs/leasenode.md.
`)
	io.WriteString(w, b.String())
}

// quietError is an error already reported to the user (for example as the
// command's output); main only turns it into the exit status.
type quietError struct{ err error }

func (e *quietError) Error() string { return e.err.Error() }
func (e *quietError) Unwrap() error { return e.err }

func quiet(err error) bool {
	var q *quietError
	var e *exitError
	return errors.As(err, &q) || errors.As(err, &e) && e.err == nil
}

// exitError carries an exit status chosen by the command (run).
type exitError struct {
	status int
	err    error // nil: nothing to print
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.status)
	}
	return e.err.Error()
}

func joinErrs(errs []error) error { return errors.Join(errs...) }
