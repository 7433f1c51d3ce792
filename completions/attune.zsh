#compdef attune
# zsh completion for attune. Either save it as _attune in a folder on $fpath before compinit
# runs, or source it after compinit in ~/.zshrc.

_attune_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _ATTUNE_COMPLETE=complete_zsh attune 2>/dev/null)
}

if [[ ${zsh_eval_context[-1]} == loadautofunc ]]; then
  # Autoloaded from $fpath by the first Tab: complete now, not only from the next Tab on.
  _attune_completion "$@"
else
  compdef _attune_completion attune
fi
