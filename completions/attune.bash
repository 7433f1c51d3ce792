# bash completion for attune. Load it from ~/.bashrc:  source /path/to/attune.bash
_attune_completion() {
    local IFS=$'\n'
    # attune splits the line up to the cursor itself: bash's COMP_WORDS are cut at ':' and '='
    # (llama3.1:8b, --stage=triage), and the replies must start after the last such break.
    COMPREPLY=( $(env COMP_LINE="${COMP_LINE:0:COMP_POINT}" COMP_WORD="${COMP_WORDS[COMP_CWORD]}" \
                  COMP_WORDBREAKS="$COMP_WORDBREAKS" _ATTUNE_COMPLETE=complete_bash "$1" 2>/dev/null) )
    return 0
}

complete -o default -F _attune_completion attune
