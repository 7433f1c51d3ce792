# fish completion for attune. Copy it to ~/.config/fish/completions/attune.fish
function _attune_completion
    # One run of attune per Tab; when it offers nothing (a PATH argument), complete files.
    set -l offered (env _ATTUNE_COMPLETE=complete_fish _TYPER_COMPLETE_FISH_ACTION=get-args \
        _TYPER_COMPLETE_ARGS=(commandline -cp) attune 2>/dev/null)
    if test -n "$offered[1]"
        printf '%s\n' $offered
    else
        __fish_complete_path (commandline -ct)
    end
end

complete --command attune --no-files --arguments '(_attune_completion)'
