"""The cockpit's terminal UI (Textual): screens that drive the cockpit engine and hold no cloud logic.

Entry point: `cockpit.tui.app.run_tui(preset_path)`. Importing this package imports nothing heavy: no
torch, no Google SDKs (the engine imports those lazily, inside workers).
"""
