"""Tiny local models that carry the real chat templates, special tokens and stop tokens of the major open model
families, so tests can exercise template handling, loss masking and stopping without downloading anything.

Each `Family` records what the real `tokenizer_config.json` / `generation_config.json` of one public checkpoint
says, with the chat template copied verbatim from a public repository that vendors it (the source is named next to
each template). `build_family_model` turns a family into a 2-layer Llama checkpoint (the architecture is not under
test: the template, the tokens and the stop ids are) in a second or two, offline.

`novel` is a made-up family that no list of known families contains, and `base` has no chat template at all: code
that only works for names it recognises fails on them.

This module imports only the standard library at import time; `build_family_model` needs torch, tokenizers and
transformers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

NATIVE, MERGED, RAISES = "native", "merged_by_template", "raises"


@dataclass(frozen=True)
class Family:
    name: str
    source: str  # where the template text and token facts came from (repo/path), or "reconstructed: ..."
    chat_template: str | None  # None for `base`
    special_tokens: tuple[str, ...]  # added tokens with special=True the template or config uses; one id each
    bos_token: str | None
    eos_token: str  # tokenizer_config.json's eos_token (not always the end-of-turn token)
    pad_token: str | None
    stop_tokens: tuple[str, ...]  # generation_config.json eos_token_id as token strings, in order
    end_of_turn: str | None  # what the template writes right after an assistant message's content
    system_role: str  # "native" | "merged_by_template" | "raises"
    # render([user], add_generation_prompt=True) is a string prefix of render([user, assistant]); None: no template
    prompt_is_prefix: bool | None = True
    # the same with a leading system turn; None where a system turn raises or there is no template
    system_prompt_is_prefix: bool | None = True
    # the system content appears in render([system, user, assistant]) (what a fine-tune is trained on)
    system_in_training_render: bool | None = True
    # render([u1, a1]) is a prefix of render([u1, a1, u2]): earlier turns render the same once the chat goes on
    history_is_prefix: bool | None = True
    # the template raises on [user, user] (roles must alternate)
    alternation_enforced: bool = False
    # the exception apply_chat_template raises on a system turn (system_role == "raises"), by class name
    system_error: str | None = None
    # added tokens with special=False: one id each, but kept by decode(skip_special_tokens=True) (Qwen's <think>)
    added_tokens: tuple[str, ...] = ()
    # added tokens registered with rstrip=True: the tokenizer swallows the whitespace after them (Phi-3.5)
    rstrip_tokens: tuple[str, ...] = ()
    # tokenizer(text) with add_special_tokens=True prepends bos_token (Llama 3, Gemma, Mistral): rendering a
    # template that writes bos_token and then encoding with special tokens doubles the BOS
    adds_bos: bool = False
    unk_token: str | None = None  # the tokenizer_config's unk_token, where it names one
    notes: str = ""

    @property
    def all_added(self) -> tuple[str, ...]:
        return self.special_tokens + self.added_tokens


# meta-llama/Llama-3.1-8B-Instruct, verbatim from huggingface/huggingface.js
# packages/jinja/test/e2e.test.js (key 'meta-llama/Llama-3.1-8B-Instruct', commit fe42e680).
LLAMA3_TEMPLATE = r'''{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message + builtin tools #}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if builtin_tools is defined or tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{%- if builtin_tools is defined %}
    {{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\n\n"}}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\n\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\n\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {%- if builtin_tools is defined and tool_call.name in builtin_tools %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
            {{- "<|python_tag|>" + tool_call.name + ".call(" }}
            {%- for arg_name, arg_val in tool_call.arguments | items %}
                {{- arg_name + '="' + arg_val + '"' }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- endif %}
                {%- endfor %}
            {{- ")" }}
        {%- else  %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
            {{- '{"name": "' + tool_call.name + '", ' }}
            {{- '"parameters": ' }}
            {{- tool_call.arguments | tojson }}
            {{- "}" }}
        {%- endif %}
        {%- if builtin_tools is defined %}
            {#- This means we're in ipython mode #}
            {{- "<|eom_id|>" }}
        {%- else %}
            {{- "<|eot_id|>" }}
        {%- endif %}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
'''

# Qwen/Qwen2.5-7B-Instruct, verbatim from huggingface/huggingface.js packages/jinja/test/e2e.test.js
# (key 'Qwen/Qwen2.5-7B-Instruct', commit fe42e680).
QWEN25_TEMPLATE = r'''{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
'''

# Qwen/Qwen3-0.6B, verbatim from huggingface/huggingface.js packages/jinja/test/e2e.test.js
# (key 'Qwen/Qwen3-0.6B', commit fe42e680); the same text is in packages/ollama-utils/src/chat-template-automap.ts
# ('library/qwen3:0.6b') and in ye-NX/llama.cpp models/templates/Qwen-Qwen3-0.6B.jinja.
QWEN3_TEMPLATE = r'''{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0].role == 'system' %}
        {{- messages[0].content + '\n\n' }}
    {%- endif %}
    {{- "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0].role == 'system' %}
        {{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {%- set content = message.content %}
        {%- set reasoning_content = '' %}
        {%- if message.reasoning_content is defined and message.reasoning_content is not none %}
            {%- set reasoning_content = message.reasoning_content %}
        {%- else %}
            {%- if '</think>' in message.content %}
                {%- set content = message.content.split('</think>')[-1].lstrip('\n') %}
                {%- set reasoning_content = message.content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') %}
            {%- endif %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index %}
            {%- if loop.last or (not loop.last and reasoning_content) %}
                {{- '<|im_start|>' + message.role + '\n<think>\n' + reasoning_content.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') }}
            {%- else %}
                {{- '<|im_start|>' + message.role + '\n' + content }}
            {%- endif %}
        {%- else %}
            {{- '<|im_start|>' + message.role + '\n' + content }}
        {%- endif %}
        {%- if message.tool_calls %}
            {%- for tool_call in message.tool_calls %}
                {%- if (loop.first and content) or (not loop.first) %}
                    {{- '\n' }}
                {%- endif %}
                {%- if tool_call.function %}
                    {%- set tool_call = tool_call.function %}
                {%- endif %}
                {{- '<tool_call>\n{"name": "' }}
                {{- tool_call.name }}
                {{- '", "arguments": ' }}
                {%- if tool_call.arguments is string %}
                    {{- tool_call.arguments }}
                {%- else %}
                    {{- tool_call.arguments | tojson }}
                {%- endif %}
                {{- '}\n</tool_call>' }}
            {%- endfor %}
        {%- endif %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if loop.first or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\n\n</think>\n\n' }}
    {%- endif %}
{%- endif %}'''

# google/gemma-2-2b-it, verbatim from huggingface/huggingface.js
# packages/ollama-utils/src/chat-template-automap.ts ('library/gemma2:2b', the GGUF's tokenizer.chat_template,
# commit fe42e680); the same text is ye-NX/llama.cpp models/templates/google-gemma-2-2b-it.jinja.
GEMMA2_TEMPLATE = (
    '{{ bos_token }}'
    "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    '{% endif %}'
    '{% for message in messages %}'
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    '{% endif %}'
    "{% if (message['role'] == 'assistant') %}"
    "{% set role = 'model' %}"
    '{% else %}'
    "{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    '{% endfor %}'
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}"
    '{% endif %}'
)

# google/gemma-3-270m-it (same text as google/gemma-3-4b-it), verbatim from huggingface/huggingface.js
# packages/ollama-utils/src/chat-template-automap.ts ('library/gemma3:270m', commit fe42e680).
GEMMA3_TEMPLATE = r'''{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '

' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '

' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '
' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>
' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model
'}}
{%- endif -%}
'''

# mistralai/Mistral-7B-Instruct-v0.3 (tool-calling version of its tokenizer_config.json), from the
# lmstudio-community Mistral-7B-Instruct-v0.3-GGUF preset copied in a stored public file, and as a re-indented docstring
# in ShishirPatil/gorilla berkeley-function-call-leaderboard/bfcl/model_handler/oss_model/mistral_fc.py.
MISTRAL_TEMPLATE = r'''{%- if messages[0]["role"] == "system" %}
    {%- set system_message = messages[0]["content"] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}
{%- set user_messages = loop_messages | selectattr("role", "equalto", "user") | list %}

{#- This block checks for alternating user/assistant messages, skipping tool calling messages #}
{%- set ns = namespace() %}
{%- set ns.index = 0 %}
{%- for message in loop_messages %}
    {%- if not (message.role == "tool" or message.role == "tool_results" or (message.tool_calls is defined and message.tool_calls is not none)) %}
        {%- if (message["role"] == "user") != (ns.index % 2 == 0) %}
            {{- raise_exception("After the optional system message, conversation roles must alternate user/assistant/user/assistant/...") }}
        {%- endif %}
        {%- set ns.index = ns.index + 1 %}
    {%- endif %}
{%- endfor %}

{{- bos_token }}
{%- for message in loop_messages %}
    {%- if message["role"] == "user" %}
        {%- if tools is not none and (message == user_messages[-1]) %}
            {{- "[AVAILABLE_TOOLS] [" }}
            {%- for tool in tools %}
                {%- set tool = tool.function %}
                {{- '{"type": "function", "function": {' }}
                {%- for key, val in tool.items() if key != "return" %}
                    {%- if val is string %}
                        {{- '"' + key + '": "' + val + '"' }}
                    {%- else %}
                        {{- '"' + key + '": ' + val|tojson }}
                    {%- endif %}
                    {%- if not loop.last %}
                        {{- ", " }}
                    {%- endif %}
                {%- endfor %}
                {{- "}}" }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- else %}
                    {{- "]" }}
                {%- endif %}
            {%- endfor %}
            {{- "[/AVAILABLE_TOOLS]" }}
            {%- endif %}
        {%- if loop.last and system_message is defined %}
            {{- "[INST] " + system_message + "\n\n" + message["content"] + "[/INST]" }}
        {%- else %}
            {{- "[INST] " + message["content"] + "[/INST]" }}
        {%- endif %}
    {%- elif message.tool_calls is defined and message.tool_calls is not none %}
        {{- "[TOOL_CALLS] [" }}
        {%- for tool_call in message.tool_calls %}
            {%- set out = tool_call.function|tojson %}
            {{- out[:-1] }}
            {%- if not tool_call.id is defined or tool_call.id|length != 9 %}
                {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}
            {%- endif %}
            {{- ', "id": "' + tool_call.id + '"}' }}
            {%- if not loop.last %}
                {{- ", " }}
            {%- else %}
                {{- "]" + eos_token }}
            {%- endif %}
        {%- endfor %}
    {%- elif message["role"] == "assistant" %}
        {{- " " + message["content"]|trim + eos_token}}
    {%- elif message["role"] == "tool_results" or message["role"] == "tool" %}
        {%- if message.content is defined and message.content.content is defined %}
            {%- set content = message.content.content %}
        {%- else %}
            {%- set content = message.content %}
        {%- endif %}
        {{- '[TOOL_RESULTS] {"content": ' + content|string + ", " }}
        {%- if not message.tool_call_id is defined or message.tool_call_id|length != 9 %}
            {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}
        {%- endif %}
        {{- '"call_id": "' + message.tool_call_id + '"}[/TOOL_RESULTS]' }}
    {%- else %}
        {{- raise_exception("Only user and assistant roles are supported, with the exception of an initial optional system message!") }}
    {%- endif %}
{%- endfor %}
'''

# microsoft/Phi-3.5-mini-instruct, verbatim from huggingface/huggingface.js
# packages/ollama-utils/src/chat-template-automap.ts ('library/phi3.5:3.8b', commit fe42e680); the same text is
# ye-NX/llama.cpp models/templates/microsoft-Phi-3.5-mini-instruct.jinja.
PHI35_TEMPLATE = (
    '{% for message in messages %}'
    "{% if message['role'] == 'system' and message['content'] %}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}"
    '{% endif %}'
    '{% endfor %}'
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}"
    '{% else %}{{ eos_token }}'
    '{% endif %}'
)

# microsoft/phi-4, verbatim from huggingface/huggingface.js
# packages/ollama-utils/src/chat-template-automap.ts ('library/phi4:14b', commit fe42e680).
PHI4_TEMPLATE = (
    '{% for message in messages %}'
    "{% if (message['role'] == 'system') %}{{'<|im_start|>system<|im_sep|>' + message['content'] + '<|im_end|>'}}"
    "{% elif (message['role'] == 'user') %}{{'<|im_start|>user<|im_sep|>' + message['content'] + '<|im_end|><|im_start|>assistant<|im_sep|>'}}"
    "{% elif (message['role'] == 'assistant') %}{{message['content'] + '<|im_end|>'}}"
    '{% endif %}'
    '{% endfor %}'
)

# HuggingFaceTB/SmolLM2-135M-Instruct, verbatim from huggingface/huggingface.js
# packages/ollama-utils/src/chat-template-automap.ts ('library/smollm2:135m', commit fe42e680).
SMOLLM2_TEMPLATE = (
    '{% for message in messages %}'
    "{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    '{% endfor %}'
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    '{% endif %}'
)

# invented for these tests (no real model): ChatML-like turns with its own markers and roles, an
# end-of-turn token <|turn_end|> that is not the tokenizer's eos_token, and two stop ids.
NOVEL_TEMPLATE = r'''{{- bos_token }}
{%- for message in messages %}
    {%- if message['role'] == 'system' %}
        {{- '<|turn|>rules\n' + message['content'] + '<|turn_end|>\n' }}
    {%- elif message['role'] == 'user' %}
        {{- '<|turn|>asker\n' + message['content'] + '<|turn_end|>\n' }}
    {%- elif message['role'] == 'assistant' %}
        {{- '<|turn|>answerer\n' + message['content'] + '<|turn_end|>\n' }}
    {%- else %}
        {{- raise_exception('Unknown role: ' + message['role']) }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|turn|>answerer\n' }}
{%- endif %}
'''

FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family(
            name="llama3",
            source=(
                "template: huggingface/huggingface.js packages/jinja/test/e2e.test.js, key "
                "'meta-llama/Llama-3.1-8B-Instruct' (commit fe42e680); generation_config eos_token_id "
                "[128001, 128008, 128009] as in many vendored copies of meta-llama/Llama-3.1-8B-Instruct; "
                "tokenizer eos <|eot_id|>, no pad token"
            ),
            chat_template=LLAMA3_TEMPLATE,
            special_tokens=("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                            "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"),
            bos_token="<|begin_of_text|>",
            eos_token="<|eot_id|>",
            pad_token=None,
            stop_tokens=("<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"),
            end_of_turn="<|eot_id|>",
            system_role=NATIVE,
            adds_bos=True,
            notes=(
                "Always writes a system header ('Cutting Knowledge Date: December 2023 / Today Date: 26 Jul 2024'), "
                "even without a system turn, and trims every message's content. The Llama-3.2 template is the same "
                "but takes the date from strftime_now(), so its rendering changes from day to day."
            ),
        ),
        Family(
            name="qwen2.5",
            source=(
                "template: huggingface/huggingface.js packages/jinja/test/e2e.test.js, key "
                "'Qwen/Qwen2.5-7B-Instruct' (commit fe42e680); the GGUF copy of Qwen2.5-0.5B-Instruct "
                "(packages/ollama-utils/src/chat-template-automap.ts, 'library/qwen2.5:0.5b') differs only in "
                "writing {{\"name\": ...}} in the tools preamble; generation_config eos_token_id [151645, 151643]"
            ),
            chat_template=QWEN25_TEMPLATE,
            special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
            added_tokens=("<tool_call>", "</tool_call>"),
            bos_token=None,
            eos_token="<|im_end|>",
            pad_token="<|endoftext|>",
            stop_tokens=("<|im_end|>", "<|endoftext|>"),
            end_of_turn="<|im_end|>",
            system_role=NATIVE,
            notes="Without a system turn the template inserts 'You are Qwen, created by Alibaba Cloud. ...'.",
        ),
        Family(
            name="qwen3",
            source=(
                "template: huggingface/huggingface.js packages/jinja/test/e2e.test.js, key 'Qwen/Qwen3-0.6B' "
                "(commit fe42e680), identical to packages/ollama-utils/src/chat-template-automap.ts "
                "'library/qwen3:0.6b' and to llama.cpp models/templates/Qwen-Qwen3-0.6B.jinja (ye-NX/llama.cpp); "
                "tokens: akougkas/warpio-cli warpio-docs/ai-docs/model_cards/qwen3:4b.md (<think> and </think> are "
                "added with special=false); generation_config eos_token_id [151645, 151643]"
            ),
            chat_template=QWEN3_TEMPLATE,
            special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
            added_tokens=("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<think>",
                          "</think>"),
            bos_token=None,
            eos_token="<|im_end|>",
            pad_token="<|endoftext|>",
            stop_tokens=("<|im_end|>", "<|endoftext|>"),
            end_of_turn="<|im_end|>",
            system_role=NATIVE,
            history_is_prefix=False,
            notes=(
                "An assistant turn after the last user message is written with a think block, an empty "
                "'<think>\\n\\n</think>\\n\\n' when it has no reasoning; earlier assistant turns are written without "
                "one (their reasoning is dropped). So render([u1, a1]) is not a prefix of render([u1, a1, u2]). "
                "enable_thinking=False appends the empty think block to the generation prompt. <think> is not a "
                "special token: decode(skip_special_tokens=True) keeps it."
            ),
        ),
        Family(
            name="gemma2",
            source=(
                "template: huggingface/huggingface.js packages/ollama-utils/src/chat-template-automap.ts, "
                "'library/gemma2:2b' (the GGUF of google/gemma-2-2b-it; identical to llama.cpp "
                "models/templates/google-gemma-2-2b-it.jinja in ye-NX/llama.cpp); generation_config eos_token_id "
                "[1, 107]"
            ),
            chat_template=GEMMA2_TEMPLATE,
            special_tokens=("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"),
            bos_token="<bos>",
            eos_token="<eos>",
            pad_token="<pad>",
            unk_token="<unk>",
            stop_tokens=("<eos>", "<end_of_turn>"),
            end_of_turn="<end_of_turn>",
            system_role=RAISES,
            system_prompt_is_prefix=None,
            system_in_training_render=None,
            alternation_enforced=True,
            system_error="TemplateError",
            adds_bos=True,
            notes="The assistant role is written as 'model'; content is trimmed.",
        ),
        Family(
            name="gemma3",
            source=(
                "template: huggingface/huggingface.js packages/ollama-utils/src/chat-template-automap.ts, "
                "'library/gemma3:270m' (the GGUF of google/gemma-3-270m-it; the same text as google/gemma-3-4b-it); "
                "generation_config eos_token_id [1, 106]"
            ),
            chat_template=GEMMA3_TEMPLATE,
            special_tokens=("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>",
                            "<start_of_image>"),
            bos_token="<bos>",
            eos_token="<eos>",
            pad_token="<pad>",
            unk_token="<unk>",
            stop_tokens=("<eos>", "<end_of_turn>"),
            end_of_turn="<end_of_turn>",
            system_role=MERGED,
            alternation_enforced=True,
            adds_bos=True,
            notes=(
                "The system content is written at the start of the first user turn, followed by a blank line. "
                "The first Gemma-3 release ('library/gemma3:1b' in the same file) read messages[0]['content'][0]"
                "['text'] and failed with UndefinedError on a plain-string system message."
            ),
        ),
        Family(
            name="mistral",
            source=(
                "template: mistralai/Mistral-7B-Instruct-v0.3 tokenizer_config.json chat_template (the tool-calling "
                "version), as copied in ShishirPatil/gorilla berkeley-function-call-leaderboard/bfcl/model_handler/"
                "oss_model/mistral_fc.py (docstring, re-indented) and verbatim in an lmstudio-community "
                "Mistral-7B-Instruct-v0.3-GGUF preset (a public file found by content search; the index does not "
                "name its repository); written here in the original layout (every tag strips whitespace, so the "
                "layout does not change the output); tokens and generation_config eos_token_id 2 from memory"
            ),
            chat_template=MISTRAL_TEMPLATE,
            special_tokens=("<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[TOOL_CALLS]", "[AVAILABLE_TOOLS]",
                            "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]"),
            bos_token="<s>",
            eos_token="</s>",
            pad_token=None,
            unk_token="<unk>",
            stop_tokens=("</s>",),
            end_of_turn="</s>",
            system_role=MERGED,
            system_prompt_is_prefix=False,
            system_in_training_render=False,
            alternation_enforced=True,
            adds_bos=True,
            notes=(
                "The system content is written into the user turn only when that user turn is the last message: "
                "render([system, user, assistant]) drops the system prompt entirely, so a fine-tune on such rows "
                "never sees it while the generation prompt contains it. Older Mistral templates (v0.1/v0.2 era) "
                "raise 'Only user and assistant roles are supported!' on any system turn."
            ),
        ),
        Family(
            name="phi3.5",
            source=(
                "template: huggingface/huggingface.js packages/ollama-utils/src/chat-template-automap.ts, "
                "'library/phi3.5:3.8b' (identical to llama.cpp models/templates/microsoft-Phi-3.5-mini-instruct.jinja "
                "in ye-NX/llama.cpp); tokenizer_config facts (eos/pad <|endoftext|>, rstrip on the role tokens and "
                "<|end|>) from a vendored Phi-3 128k tokenizer_config (a public file found by content search; the "
                "index does not name its repository); generation_config eos_token_id "
                "[32007, 32001, 32000] (reconstructed from memory of microsoft/Phi-3.5-mini-instruct, corroborated "
                "by vendored Phi generation settings; Phi-3-mini-4k lists the same ids as [32000, 32001, 32007])"
            ),
            chat_template=PHI35_TEMPLATE,
            special_tokens=("<unk>", "<s>", "<|endoftext|>", "<|assistant|>", "<|system|>", "<|end|>", "<|user|>"),
            bos_token="<s>",
            eos_token="<|endoftext|>",
            pad_token="<|endoftext|>",
            unk_token="<unk>",
            stop_tokens=("<|end|>", "<|assistant|>", "<|endoftext|>"),
            end_of_turn="<|end|>",
            system_role=NATIVE,
            history_is_prefix=False,
            rstrip_tokens=("<|assistant|>", "<|system|>", "<|end|>", "<|user|>"),
            notes=(
                "Without add_generation_prompt the template appends eos_token (<|endoftext|>) after the last "
                "'<|end|>\\n', so render([u1, a1]) ends in <|endoftext|> and is not a prefix of "
                "render([u1, a1, u2]). An empty system message is skipped. Stop ids include <|assistant|>. "
                "rstrip on <|end|> and the role tokens means the '\\n' the template writes after them never "
                "reaches the ids."
            ),
        ),
        Family(
            name="phi4",
            source=(
                "template: huggingface/huggingface.js packages/ollama-utils/src/chat-template-automap.ts, "
                "'library/phi4:14b' (the GGUF of microsoft/phi-4); tokenizer_config bos <|endoftext|>, eos "
                "<|im_end|>, pad <|dummy_85|> and generation_config eos_token_id 100265 (<|im_end|>) are "
                "reconstructed from memory of microsoft/phi-4 (pad <|dummy_85|> corroborated by "
                "IyngkarranKumar/test_time_emergent_scaling utils/tokenization_setup.py)"
            ),
            chat_template=PHI4_TEMPLATE,
            special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|im_sep|>", "<|dummy_85|>"),
            bos_token="<|endoftext|>",
            eos_token="<|im_end|>",
            pad_token="<|dummy_85|>",
            unk_token="<|endoftext|>",
            stop_tokens=("<|im_end|>",),
            end_of_turn="<|im_end|>",
            system_role=NATIVE,
            notes=(
                "The template ignores add_generation_prompt: every user turn is followed by "
                "'<|im_start|>assistant<|im_sep|>', and nothing separates turns (no newlines)."
            ),
        ),
        Family(
            name="smollm2",
            source=(
                "template: huggingface/huggingface.js packages/ollama-utils/src/chat-template-automap.ts, "
                "'library/smollm2:135m' (the GGUF of HuggingFaceTB/SmolLM2-135M-Instruct); tokenizer_config "
                "(bos <|im_start|>, eos/pad <|im_end|>) and generation_config eos_token_id 2 reconstructed from "
                "memory of HuggingFaceTB/SmolLM2-*-Instruct"
            ),
            chat_template=SMOLLM2_TEMPLATE,
            special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
            bos_token="<|im_start|>",
            eos_token="<|im_end|>",
            pad_token="<|im_end|>",
            unk_token="<|endoftext|>",
            stop_tokens=("<|im_end|>",),
            end_of_turn="<|im_end|>",
            system_role=NATIVE,
            notes="Without a system turn the template inserts 'You are a helpful AI assistant named SmolLM, ...'.",
        ),
        Family(
            name="base",
            source=(
                "reconstructed: a base (not instruction-tuned) checkpoint in the style of meta-llama/Llama-3.2-1B: "
                "no chat template, bos <|begin_of_text|> added by the tokenizer, eos <|end_of_text|>, no pad, "
                "generation_config eos_token_id 128001"
            ),
            chat_template=None,
            special_tokens=("<|begin_of_text|>", "<|end_of_text|>"),
            bos_token="<|begin_of_text|>",
            eos_token="<|end_of_text|>",
            pad_token=None,
            stop_tokens=("<|end_of_text|>",),
            end_of_turn=None,
            system_role=RAISES,
            prompt_is_prefix=None,
            system_prompt_is_prefix=None,
            system_in_training_render=None,
            history_is_prefix=None,
            system_error="ValueError",
            adds_bos=True,
            notes="apply_chat_template raises ValueError on any conversation: there is no template to apply.",
        ),
        Family(
            name="novel",
            source="reconstructed: invented for these tests, in the style of the templates above; no real model",
            chat_template=NOVEL_TEMPLATE,
            special_tokens=("<|seq|>", "<|seq_end|>", "<|fill|>", "<|turn|>", "<|turn_end|>"),
            bos_token="<|seq|>",
            eos_token="<|seq_end|>",
            pad_token="<|fill|>",
            stop_tokens=("<|turn_end|>", "<|seq_end|>"),
            end_of_turn="<|turn_end|>",
            system_role=NATIVE,
            notes="Roles are written as 'rules', 'asker' and 'answerer'; any other role raises.",
        ),
    )
}


def build_family_model(name: str, target: Path, corpus: list[str], *, vocab_size: int = 512, seed: int = 0,
                       shape: dict | None = None) -> Path:
    """Save into `target` a 2-layer Llama whose tokenizer (byte-level BPE trained on `corpus`) carries family `name`'s
    special tokens as single ids, its bos/eos/pad, its chat template, and whose generation_config.eos_token_id is
    the family's stop token ids (an int when there is one). `shape` overrides LlamaConfig fields (one 64-wide head
    for vLLM's CPU attention, say). Offline; a second or two."""
    import torch
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    family = FAMILIES[name]
    target = Path(target)

    def added(content: str, special: bool) -> AddedToken:
        return AddedToken(content, special=special, normalized=False, lstrip=False,
                          rstrip=content in family.rstrip_tokens, single_word=False)

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    specials = [added(token, True) for token in family.special_tokens]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(corpus, trainer)
    bpe.add_special_tokens(specials)  # the same ids again, and makes sure the flags (rstrip) are the ones set here
    bpe.add_tokens([added(token, False) for token in family.added_tokens])
    if family.adds_bos:
        bos = family.bos_token
        bpe.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B:1", special_tokens=[(bos, bpe.token_to_id(bos))]
        )

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token=family.bos_token, eos_token=family.eos_token, pad_token=family.pad_token,
        unk_token=family.unk_token,
    )
    if family.chat_template is not None:
        tokenizer.chat_template = family.chat_template

    def token_id(token: str | None) -> int | None:
        return None if token is None else bpe.token_to_id(token)

    stops = [token_id(token) for token in family.stop_tokens]
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        bos_token_id=token_id(family.bos_token), eos_token_id=token_id(family.eos_token),
        pad_token_id=token_id(family.pad_token), tie_word_embeddings=True,
    )
    for key, value in (shape or {}).items():
        setattr(config, key, value)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.bos_token_id = token_id(family.bos_token)
    model.generation_config.eos_token_id = stops[0] if len(stops) == 1 else stops
    model.generation_config.pad_token_id = token_id(family.pad_token)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target
