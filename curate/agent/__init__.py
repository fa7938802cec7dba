"""The CodeAct agent runtime shared by teacher sampling (`curate generate`) and student evaluation
(`curate eval`): backends that turn chats into completions, a sandboxed Python executor, the
`web_search` tool, and the loop that advances every in-flight run one step at a time.

    backends/   one interface (GenRequest in, Completion out) over transformers, vLLM, OpenAI-compatible servers
    sandbox.py  Python execution in killable worker processes (smolagents' LocalPythonExecutor inside)
    search.py   web_search: a local bm25s corpus or a retrieval server (POST /retrieve)
    loop.py     the CodeAct loop: Thought -> code action -> observation, final_answer ends a run
"""
