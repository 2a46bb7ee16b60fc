// Package report turns a checked run into files a person reads:
// results.json (every number and verdict of the run), timeline.html (a
// self-contained SVG of who led, which node was up, what the nemesis did
// and which fenced writes were accepted, rejected or violating) and the
// one-line summary printed per run. Package jepsen assembles Results from
// the checkers and writes them with this package.
//
// # Goroutines
//
// None.
package report
