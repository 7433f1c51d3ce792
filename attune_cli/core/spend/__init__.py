"""Where the money goes: spend reports over the hourly rollups, and budgets that hold."""
