package cli

import "github.com/spf13/cobra"

func newCACmd(_ *env) *cobra.Command {
	return &cobra.Command{Use: "ca", Short: "(under construction)", Hidden: true}
}
