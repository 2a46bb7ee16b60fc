package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/client"
	"github.com/raftlease/raftlease/transport"
)

// globalFlags are the flags every client command takes, before or after
// its name.
type globalFlags struct {
	Addr          listFlag
	AuthToken     string
	AuthTokenFile string
	TLS           tlsFiles
	Output        string
	Timeout       time.Duration
	RedisPrefix   string // key prefix with a redis:// --addr (store_select.go)

	getenv         func(string) string
	stdout, stderr io.Writer
}

// globalEnv names the environment variable of each global flag. The auth
// token is LEASENODE_AUTH_TOKEN, not LEASENODE_TOKEN: `leasenode run` hands
// its child the fencing token in LEASENODE_TOKEN.
var globalEnv = map[string]string{
	"addr":            "LEASENODE_ADDR",
	"auth-token":      "LEASENODE_AUTH_TOKEN",
	"auth-token-file": "LEASENODE_AUTH_TOKEN_FILE",
	"tls-cert":        "LEASENODE_TLS_CERT",
	"tls-key":         "LEASENODE_TLS_KEY",
	"tls-ca":          "LEASENODE_TLS_CA",
	"tls-server-name": "LEASENODE_TLS_SERVER_NAME",
	"o":               "LEASENODE_OUTPUT",
	"timeout":         "LEASENODE_TIMEOUT",
	"redis-prefix":    "LEASENODE_REDIS_PREFIX",
}

func newGlobalFlags(getenv func(string) string) *globalFlags {
	return &globalFlags{Output: "table", Timeout: 10 * time.Second, getenv: getenv, stdout: os.Stdout, stderr: os.Stderr}
}

// register declares the global flags on fs, with their current values as
// defaults, so a command's flag set can take them again after its name.
func (g *globalFlags) register(fs *flag.FlagSet) {
	fs.Var(&g.Addr, "addr", "comma-separated HTTP endpoints of cluster members (host:port or http(s)://host:port), or one Redis server: redis://[user:password@]host:port[/db] (rediss:// for TLS)")
	fs.StringVar(&g.AuthToken, "auth-token", g.AuthToken, "bearer token for the HTTP API")
	fs.StringVar(&g.AuthTokenFile, "auth-token-file", g.AuthTokenFile, "file holding the bearer token (its first token)")
	fs.StringVar(&g.TLS.Cert, "tls-cert", g.TLS.Cert, "PEM file of the client certificate (when the servers require one)")
	fs.StringVar(&g.TLS.Key, "tls-key", g.TLS.Key, "PEM file of the key of --tls-cert")
	fs.StringVar(&g.TLS.CA, "tls-ca", g.TLS.CA, "PEM file of the CA that signs the servers' certificates")
	fs.StringVar(&g.TLS.ServerName, "tls-server-name", g.TLS.ServerName, "name to check in the servers' certificates (default: the endpoint's host)")
	fs.StringVar(&g.Output, "o", g.Output, "output: table (for people) or json (one JSON document per line)")
	fs.StringVar(&g.Output, "output", g.Output, "same as -o")
	fs.DurationVar(&g.Timeout, "timeout", g.Timeout, "bound on one operation (acquire, get, status...)")
	fs.StringVar(&g.RedisPrefix, "redis-prefix", g.RedisPrefix, "key prefix of the Redis bridge's keys, with a redis:// --addr (default \"raftlease:\")")
}

// registerTokenAlias lets --token mean the auth token on commands that have
// no fencing --token of their own.
func (g *globalFlags) registerTokenAlias(fs *flag.FlagSet) {
	fs.StringVar(&g.AuthToken, "token", g.AuthToken, "same as --auth-token")
}

// env applies the LEASENODE_ variables of the global flags.
func (g *globalFlags) env(fs *flag.FlagSet) error {
	addr := g.Addr
	g.Addr = nil
	if err := applyEnv(fs, globalEnv, g.getenv); err != nil {
		return err
	}
	if len(g.Addr) == 0 {
		g.Addr = addr
	}
	return nil
}

// parsePre parses the global flags given before the command name; a
// --addr there replaces the environment's list.
func (g *globalFlags) parsePre(fs *flag.FlagSet, args []string) error {
	envAddr := g.Addr
	g.Addr = nil
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(g.Addr) == 0 {
		g.Addr = envAddr
	}
	return nil
}

// commandFlags returns a flag set for command name with the global flags on
// it; a --addr given after the command replaces one given before.
func (g *globalFlags) commandFlags(name string, tokenAlias bool) *flag.FlagSet {
	fs := newFlagSet(name)
	g.register(fs)
	if tokenAlias {
		g.registerTokenAlias(fs)
	}
	return fs
}

// parse parses a command's arguments and checks the global flags.
func (g *globalFlags) parse(fs *flag.FlagSet, args []string) ([]string, error) {
	before := append(listFlag(nil), g.Addr...)
	g.Addr = nil
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, err
	}
	if len(g.Addr) == 0 {
		g.Addr = before
	}
	return pos, g.validate()
}

func (g *globalFlags) validate() error {
	var errs []error
	errs = append(errs, oneOf("o", g.Output, "table", "json"))
	if g.Timeout <= 0 {
		errs = append(errs, usagef("--timeout must be positive, is %v", g.Timeout))
	}
	if g.AuthToken != "" && g.AuthTokenFile != "" {
		errs = append(errs, usagef("--auth-token and --auth-token-file conflict"))
	}
	errs = append(errs, g.validateAddrs()) // store_select.go: cluster, redis:// or etcd://
	return errors.Join(errs...)
}

func (g *globalFlags) json() bool { return g.Output == "json" }

// endpointsFor turns host:port or http(s)://host:port values into the
// URLs the client takes: a bare host:port gets https when TLS is on.
func endpointsFor(flagName string, values []string, tls bool) ([]string, error) {
	out := make([]string, 0, len(values))
	for _, v := range values {
		scheme, hostPort, err := normalizeEndpoint(flagName, v)
		if err != nil {
			return nil, err
		}
		if scheme == "" {
			scheme = "http"
			if tls {
				scheme = "https"
			}
		}
		out = append(out, scheme+"://"+hostPort)
	}
	return out, nil
}

// newClient builds the cluster client the flags describe.
func (g *globalFlags) newClient() (*client.Client, error) {
	if err := g.requireCluster(); err != nil {
		return nil, err
	}
	tlsCfg, err := g.TLS.clientTLS()
	if err != nil {
		return nil, err
	}
	addrs := []string(g.Addr)
	if len(addrs) == 0 {
		addrs = []string{defaultHTTPAddr}
	}
	endpoints, err := endpointsFor("addr", addrs, tlsCfg != nil)
	if err != nil {
		return nil, err
	}
	token := g.AuthToken
	if g.AuthTokenFile != "" {
		tokens, err := readTokenFile("auth-token-file", g.AuthTokenFile)
		if err != nil {
			return nil, err
		}
		token = tokens[0]
	}
	c, err := client.New(client.Options{
		Endpoints: endpoints,
		Token:     token,
		TLS:       tlsCfg,
		Logger:    hclog.NewNullLogger(),
	})
	if err != nil {
		return nil, usagef("--addr: %v", err)
	}
	return c, nil
}

// opContext bounds one operation by --timeout.
func (g *globalFlags) opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), g.Timeout)
}

// exitStatus maps an error to the documented exit status.
func exitStatus(err error) int {
	var ue *usageError
	var ee *exitError
	var ne net.Error
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		return ee.status
	case errors.As(err, &ue), errors.Is(err, raftlease.ErrInvalidArgument):
		return exitUsage
	case errors.Is(err, transport.ErrUnauthorized):
		return exitUnauth
	case errors.Is(err, raftlease.ErrLeaseHeld), errors.Is(err, raftlease.ErrNotHolder),
		errors.Is(err, raftlease.ErrNotFound), errors.Is(err, raftlease.ErrStaleToken),
		errors.Is(err, raftlease.ErrCompacted):
		return exitRefused
	case raftlease.IsRetryable(err), errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne):
		return exitUnavailable
	}
	return exitOther
}

// describeErr is the one-line text of an error for people.
func describeErr(err error) string {
	msg := err.Error()
	return strings.TrimPrefix(msg, "raftlease: ")
}
