package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"sort"
	"strings"
)

// usageError is a problem with the command line: exit status 2, and the
// message names the flag or argument at fault.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// helpError: -h or --help was given; main prints the flags of fs.
type helpError struct{ fs *flag.FlagSet }

func (e *helpError) Error() string        { return "help requested" }
func (e *helpError) Is(target error) bool { return target == flag.ErrHelp }

// printDefaults writes the flags of fs with their usage and defaults.
func (e *helpError) printDefaults(w io.Writer) {
	e.fs.SetOutput(w)
	e.fs.PrintDefaults()
	e.fs.SetOutput(io.Discard)
}

// envPrefix starts the name of every environment variable a flag reads.
const envPrefix = "LEASENODE_"

// envName is the environment variable for a flag: LEASENODE_ and the flag
// name upper-cased, dashes turned into underscores (--data-dir reads
// LEASENODE_DATA_DIR).
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// applyEnv sets every flag of fs named in envNames (flag name -> variable)
// from the environment, before the command line is parsed, so a flag on
// the command line beats its variable. It reports a bad value by variable
// name.
func applyEnv(fs *flag.FlagSet, envNames map[string]string, getenv func(string) string) error {
	names := make([]string, 0, len(envNames))
	for name := range envNames {
		names = append(names, name)
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		v := getenv(envNames[name])
		if v == "" {
			continue
		}
		f := fs.Lookup(name)
		if f == nil {
			continue
		}
		if err := f.Value.Set(v); err != nil {
			errs = append(errs, usagef("invalid value %q for %s (--%s): %v", v, envNames[name], name, err))
		}
	}
	return errors.Join(errs...)
}

// allEnv maps every flag of fs to its LEASENODE_ variable.
func allEnv(fs *flag.FlagSet) map[string]string {
	out := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { out[f.Name] = envName(f.Name) })
	return out
}

// newFlagSet returns a flag set that reports errors instead of exiting and
// prints nothing itself: the command prints usage once, on its own terms.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parseInterspersed parses flags that may come before, between and after
// positional arguments (`acquire NAME --holder h`), and returns the
// positional arguments. Everything after a "--" is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, &helpError{fs: fs}
			}
			return nil, usagef("%s: %v", fs.Name(), err)
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		if len(rest) == 0 {
			return positional, nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// splitCommand splits `run` arguments at the first "--": what comes before
// is leasenode's, what follows is the command to run.
func splitCommand(args []string) (own, command []string, found bool) {
	for i, a := range args {
		if a == "--" {
			return args[:i], args[i+1:], true
		}
	}
	return args, nil, false
}

// listFlag is a comma-separated list flag; repeating it appends.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l = append(*l, part)
		}
	}
	return nil
}

// metaFlag collects repeated k=v pairs.
type metaFlag map[string]string

func (m metaFlag) String() string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

func (m metaFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not key=value", v)
	}
	m[k] = val
	return nil
}

// oneOf checks an enumerated flag value.
func oneOf(flagName, value string, allowed ...string) error {
	for _, a := range allowed {
		if value == a {
			return nil
		}
	}
	return usagef("--%s %q: want one of %s", flagName, value, strings.Join(allowed, ", "))
}

// checkHostPort checks a host:port flag value. A bind address may leave the
// host empty (all interfaces) but needs a port.
func checkHostPort(flagName, value string) error {
	host, port, err := net.SplitHostPort(value)
	if err != nil {
		return usagef("--%s %q is not host:port: %v", flagName, value, err)
	}
	_ = host
	if port == "" {
		return usagef("--%s %q has no port", flagName, value)
	}
	return nil
}

// unspecifiedHost reports whether a bind address listens on all
// interfaces, so that it cannot be given to peers as it is.
func unspecifiedHost(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// normalizeEndpoint accepts host:port or http(s)://host:port and returns
// the scheme ("" when none was given) and host:port.
func normalizeEndpoint(flagName, value string) (scheme, hostPort string, err error) {
	v := strings.TrimSpace(value)
	if strings.Contains(v, "://") {
		u, perr := url.Parse(v)
		if perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return "", "", usagef("--%s %q: want host:port or http(s)://host:port", flagName, value)
		}
		scheme, v = u.Scheme, u.Host
	}
	if _, port, serr := net.SplitHostPort(v); serr != nil || port == "" {
		return "", "", usagef("--%s %q: want host:port or http(s)://host:port", flagName, value)
	}
	return scheme, v, nil
}
