from agent_plugin_tools._docstring import parse_docstring


def test_empty_docstring() -> None:
    assert parse_docstring(None).description == ""
    assert parse_docstring("").parameters == {}


def test_summary_only() -> None:
    doc = parse_docstring("Add two numbers.")
    assert doc.description == "Add two numbers."
    assert doc.parameters == {}


def test_google_style_sections() -> None:
    doc = parse_docstring(
        """Search the catalogue.

        Finds products by name; results are sorted by price.

        Args:
            query: words to look for.
            limit (int, optional): how many results
                to return at most.
            *tags: ignored here.

        Returns:
            The products.

        Raises:
            ValueError: never: not a parameter.
        """
    )
    assert doc.description == "Search the catalogue.\n\nFinds products by name; results are sorted by price."
    assert doc.parameters == {
        "query": "words to look for.",
        "limit": "how many results to return at most.",
        "tags": "ignored here.",
    }


def test_other_parameter_section_names_and_attributes() -> None:
    for header in ("Arguments", "Parameters", "Params", "Keyword Args", "Attributes"):
        doc = parse_docstring(f"Summary.\n\n{header}:\n    x: the x.\n")
        assert doc.parameters == {"x": "the x."}, header
        assert doc.description == "Summary."


def test_entry_with_nested_lines_stays_one_entry() -> None:
    doc = parse_docstring("S.\n\nArgs:\n    a: first line\n        key: value inside the description\n    b: second.\n")
    assert doc.parameters == {"a": "first line key: value inside the description", "b": "second."}


def test_unknown_headers_are_description() -> None:
    doc = parse_docstring("Compute this:\n\nFor example:\n    x: that.\n")
    assert doc.description == "Compute this:\n\nFor example:\n    x: that."
    assert doc.parameters == {}
