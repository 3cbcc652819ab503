"""The hold and maintenance state map: its file and the runtime API's view of it."""

from __future__ import annotations

from dockroll.router import hold


def test_the_state_file_reads_back_as_it_was_written() -> None:
    flags = {"hold": "on", "maintenance": "off", "restore": "pending"}
    text = hold.render_state(flags)
    assert hold.parse_state(text) == {**hold.DEFAULT_STATE, **flags}
    assert hold.render_state(hold.parse_state(text)) == text


def test_blank_and_keyless_lines_of_the_state_file_are_left_out() -> None:
    assert hold.parse_state("\nhold on\nstray\n  maintenance   off  \n") == {
        "hold": "on",
        "maintenance": "off",
    }


def test_show_map_lines_are_read_by_their_key() -> None:
    assert hold.parse_map("0x55d1 hold off\n0x55d2 restore done\n\n") == {
        "hold": "off",
        "restore": "done",
    }
