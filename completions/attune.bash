# bash completion for attune. Load it from ~/.bashrc:  source /path/to/attune.bash
_attune_completion() {
    local IFS=$'\n'
    # The line up to the cursor (attune splits it as the shell would) and bash's current word,
    # which is shorter when bash split at ':' or '=' (llama3.1:8b, --stage=triage).
    COMPREPLY=( $(env COMP_LINE="${COMP_LINE:0:COMP_POINT}" COMP_WORD="${COMP_WORDS[COMP_CWORD]}" \
                  _ATTUNE_COMPLETE=complete_bash "$1" 2>/dev/null) )
    return 0
}

complete -o default -F _attune_completion attune
