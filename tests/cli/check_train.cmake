# `blip2 train` end to end on a dataset made here (no Python): images copied from tests/data/images,
# a LAVIS annotation file and a webdataset tar shard, trained on the tiny models of build/cli-models.
#   cmake -DBLIP2=<cli> -DMODELS=<cli-models> -DIMAGES=<tests/data/images> -DSTAGE1_NO_TOKENIZER=<dir>
#         -DWORK=<scratch folder> -DCASE=data|stage1|stage2_opt|stage2_t5|bad_images|errors -P check_train.cmake
# CASE data writes WORK/data; stage1 trains into WORK/stage1, whose final/ model stage2_opt starts from.
cmake_minimum_required(VERSION 3.19)  # string(JSON)
set(DATA ${WORK}/data)
set(SHORT_RUN --batch_size_train 4 --num-workers 1 --log_every 1 --max_txt_len 16 --threads 1)

# Runs blip2 with the arguments after `expect_rc`; stdout, stderr end up in `out`, `err`.
function(blip2_run expect_rc)
  execute_process(COMMAND ${BLIP2} ${ARGN} OUTPUT_VARIABLE o ERROR_VARIABLE e RESULT_VARIABLE rc)
  set(out "${o}" PARENT_SCOPE)
  set(err "${e}" PARENT_SCOPE)
  if(NOT rc EQUAL expect_rc)
    string(REPLACE ";" " " cmd "${ARGN}")
    message(FATAL_ERROR "blip2 ${cmd}\nexited with ${rc}, expected ${expect_rc}\nstdout:\n${o}\nstderr:\n${e}")
  endif()
endfunction()

function(expect_in text pattern what)
  if(NOT text MATCHES "${pattern}")
    message(FATAL_ERROR "${what}: expected /${pattern}/ in\n${text}")
  endif()
endfunction()

function(expect_files)
  foreach(f ${ARGN})
    if(NOT EXISTS ${f})
      message(FATAL_ERROR "missing ${f}")
    endif()
  endforeach()
endfunction()

# The JSON object blip2 train prints as the last line of stdout, into `summary`.
function(last_json_line)
  string(STRIP "${out}" text)
  string(REGEX REPLACE ".*\n" "" line "${text}")
  string(JSON steps ERROR_VARIABLE bad GET "${line}" steps)
  if(bad)
    message(FATAL_ERROR "the last line of stdout is not the summary JSON: ${line}")
  endif()
  set(summary "${line}" PARENT_SCOPE)
endfunction()

if(CASE STREQUAL "data")
  file(REMOVE_RECURSE ${WORK})
  file(MAKE_DIRECTORY ${DATA}/images ${DATA}/shard)
  set(pictures astronaut.png camera.png chelsea.png coffee.png logo.png palette_color.png retina.jpg rocket.jpg)
  file(COPY ${IMAGES}/astronaut.png ${IMAGES}/camera.png ${IMAGES}/chelsea.png ${IMAGES}/coffee.png ${IMAGES}/logo.png
       ${IMAGES}/palette_color.png ${IMAGES}/retina.jpg ${IMAGES}/rocket.jpg DESTINATION ${DATA}/images)
  set(captions "An astronaut in a white suit." "A black and white photo of a man with a camera."
      "A cat sitting on a red sofa!" "A cup of coffee on a table." "The logo of a python library." "Coloured squares."
      "An eye: the retina, seen through a lens." "A rocket standing at the station.")
  # The annotation file: a JSON array with 12 entries (one a list of two captions), paths relative to it.
  set(entries "")
  foreach(i RANGE 11)
    math(EXPR k "${i} % 8")
    list(GET pictures ${k} picture)
    list(GET captions ${k} caption)
    if(i EQUAL 11)
      set(caption "${caption}\", \"Another view.")  # a list of two captions: two examples
      list(APPEND entries "{\"image\": \"images/${picture}\", \"caption\": [\"${caption}\"], \"image_id\": ${i}}")
    else()
      list(APPEND entries "{\"image\": \"images/${picture}\", \"caption\": \"${caption}\", \"image_id\": ${i}}")
    endif()
  endforeach()
  string(JOIN ",\n " json ${entries})
  file(WRITE ${DATA}/captions.json "[${json}]\n")
  # The same as JSON lines with one image that is not there.
  string(REPLACE "images/logo.png" "images/missing.png" lines "${json}")
  string(REPLACE ",\n " "\n" lines "${lines}")
  file(WRITE ${DATA}/missing_image.jsonl "${lines}\n")
  file(WRITE ${DATA}/empty.json "[]\n")
  # A webdataset shard with 4 samples (NNNNNN.png|jpg + NNNNNN.txt), and one with no complete sample.
  set(members "")
  foreach(i RANGE 3)
    list(GET pictures ${i} picture)
    list(GET captions ${i} caption)
    get_filename_component(ext ${picture} LAST_EXT)
    file(COPY_FILE ${IMAGES}/${picture} ${DATA}/shard/00000${i}${ext})
    file(WRITE ${DATA}/shard/00000${i}.txt "${caption}")
    list(APPEND members 00000${i}${ext} 00000${i}.txt)
  endforeach()
  execute_process(COMMAND ${CMAKE_COMMAND} -E tar cf ${DATA}/train-0.tar ${members} WORKING_DIRECTORY ${DATA}/shard
                  RESULT_VARIABLE rc)
  execute_process(COMMAND ${CMAKE_COMMAND} -E tar cf ${DATA}/captions-only.tar 000000.txt WORKING_DIRECTORY ${DATA}/shard)
  # A LAVIS project file: its run: section is read, the LAVIS-only keys ignored.
  file(WRITE ${DATA}/pretrain_stage1.yaml
"model:
  arch: blip2
  load_pretrained: False
run:
  task: image_text_pretrain
  lr_sched: \"linear_warmup_cosine_lr\"
  init_lr: 1e-3
  min_lr: 1e-5
  warmup_lr: 1e-6
  warmup_steps: 2
  weight_decay: 0.05
  max_epoch: 2
  batch_size_train: 4
  seed: 42
  output_dir: \"output/BLIP2/Pretrain_stage1\"
  amp: True
  evaluate: False
  train_splits: [\"train\"]
")
  expect_files(${DATA}/train-0.tar ${DATA}/captions.json)

elseif(CASE STREQUAL "stage1")
  # Stage 1 from a retrieval model without an ITG head, 13 + 4 examples mixed 3:1, 4 batches of 4
  # per epoch, 2 epochs, a checkpoint after every step.
  set(OUT ${WORK}/stage1)
  file(REMOVE_RECURSE ${OUT})
  set(train_args train --stage 1 --model ${MODELS}/itm --output-dir ${OUT} --config ${DATA}/pretrain_stage1.yaml
      --annotations ${DATA}/captions.json --shards ${DATA}/train-0.tar --ratio 3 1 --checkpoint_every 1 ${SHORT_RUN})
  blip2_run(0 ${train_args})
  last_json_line()
  string(JSON steps GET "${summary}" steps)
  string(JSON itg GET "${summary}" losses loss_itg)
  if(NOT steps EQUAL 8)
    message(FATAL_ERROR "expected 8 steps (17 examples / 4 = 4 batches, 2 epochs), got ${steps}: ${summary}")
  endif()
  expect_in("${err}" "step 8/8 epoch 1 loss [0-9.]+ loss_itc" "progress")
  expect_files(${OUT}/final/config.json ${OUT}/final/model.safetensors ${OUT}/final/vocab.txt ${OUT}/loss_curves.svg
               ${OUT}/metrics.jsonl ${OUT}/checkpoint-8/trainer_state.json)
  file(READ ${OUT}/loss_curves.svg svg)
  expect_in("${svg}" "loss_itg" "loss_curves.svg")
  # The trained model is a retrieval model directory the pipeline runs on.
  blip2_run(0 retrieve --model ${OUT}/final --images ${DATA}/images/chelsea.png ${DATA}/images/rocket.jpg
            --texts "a cat" "a rocket" --top-k 2)
  expect_in("${out}" "rank +score +itm +itc +text" "retrieve on the trained model")

  # Resume: point `latest` back at step 5 (epoch 1, batch 1) and continue; the run must end with
  # the same weights bit for bit.
  file(COPY_FILE ${OUT}/final/model.safetensors ${WORK}/stage1-uninterrupted.safetensors)
  file(WRITE ${OUT}/latest "checkpoint-5\n")
  blip2_run(0 ${train_args} --resume)
  expect_in("${err}" "step 6/8" "the resumed run's progress")
  if(err MATCHES "step [1-5]/8")
    message(FATAL_ERROR "the resumed run repeated steps before the checkpoint:\n${err}")
  endif()
  last_json_line()
  string(JSON steps GET "${summary}" steps)
  if(NOT steps EQUAL 8)
    message(FATAL_ERROR "the resumed run ended at step ${steps}, not 8")
  endif()
  execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files ${OUT}/final/model.safetensors
                          ${WORK}/stage1-uninterrupted.safetensors RESULT_VARIABLE differ)
  if(differ)
    message(FATAL_ERROR "resuming from checkpoint-5 did not give the uninterrupted run's weights")
  endif()
  # A finished run resumes to its end at once.
  blip2_run(0 ${train_args} --resume ${OUT})
  if(err MATCHES "step [0-9]+/8")
    message(FATAL_ERROR "resuming a finished run trained again:\n${err}")
  endif()
  # Continuing from the trained model: it loads as a stage-1 model (now with its ITG head).
  file(REMOVE_RECURSE ${WORK}/stage1-again)
  # It evaluates retrieval on a validation split after each epoch (recall in LAVIS's percentages).
  blip2_run(0 train --stage 1 --model ${OUT}/final --output_dir ${WORK}/stage1-again --annotations ${DATA}/captions.json
            --iters-per-epoch 1 --max_epoch 2 --eval-annotations ${DATA}/captions.json --eval-max-images 6 --k_test 3
            ${SHORT_RUN})
  expect_in("${err}" "eval epoch 1 \\([0-9.]+ s\\): {\"agg_metrics\"" "the evaluation's progress line")
  last_json_line()
  string(JSON r1 GET "${summary}" eval txt_r1)
  string(JSON r10 GET "${summary}" eval img_r10)
  if(r1 LESS 0 OR r1 GREATER 100 OR NOT r10 EQUAL 100)
    message(FATAL_ERROR "recall out of range (image->text R@1 ${r1}; text->image R@10 must be 100 for 6 images): ${summary}")
  endif()
  file(STRINGS ${WORK}/stage1-again/metrics.jsonl eval_lines REGEX "\"eval\":")
  list(LENGTH eval_lines n)
  if(NOT n EQUAL 2)
    message(FATAL_ERROR "expected 2 evaluation lines in metrics.jsonl, got ${n}")
  endif()
  # Cached image features: the first run encodes each of the 8 images once into the cache, a second
  # run reads them back and trains to the same weights bit for bit; a cache made with another image
  # encoder is refused, naming what differs.
  file(REMOVE_RECURSE ${WORK}/features ${WORK}/cached-a ${WORK}/cached-b ${WORK}/cached-opt)
  set(cached train --stage 1 --model ${MODELS}/itm --annotations ${DATA}/captions.json --cache-image-features
      ${WORK}/features --max_epoch 2 ${SHORT_RUN})
  blip2_run(0 ${cached} --output_dir ${WORK}/cached-a)
  expect_in("${err}" "cached the image features of 8 images" "building the feature cache")
  blip2_run(0 ${cached} --output_dir ${WORK}/cached-b)
  expect_in("${err}" "image features of 8 images from" "reading the feature cache")
  if(err MATCHES "cached the image features")
    message(FATAL_ERROR "the second run encoded the images again:\n${err}")
  endif()
  execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files ${WORK}/cached-a/final/model.safetensors
                          ${WORK}/cached-b/final/model.safetensors RESULT_VARIABLE differ)
  if(differ)
    message(FATAL_ERROR "two runs on the same feature cache trained different weights")
  endif()
  blip2_run(1 train --stage 2 --model ${MODELS}/opt --output_dir ${WORK}/cached-opt --annotations ${DATA}/captions.json
            --cache-image-features ${WORK}/features ${SHORT_RUN})
  expect_in("${err}" "features were cached for another (vision_config|weights)" "a cache of another image encoder")
  message(STATUS "stage 1: 8 steps, loss_itg ${itg}; retrieve runs on final/; resume is bit-exact; eval R@1 ${r1}; "
                 "feature cache reused bit-exactly")

elseif(CASE STREQUAL "stage2_opt")
  # Stage 2 through the frozen OPT (bf16), the Q-Former from the stage-1 run, with a prompt.
  set(OUT ${WORK}/stage2-opt)
  file(REMOVE_RECURSE ${OUT})
  blip2_run(0 train --stage 2 --model ${MODELS}/opt --output_dir ${OUT} --annotations ${DATA}/captions.json
            --init-qformer ${WORK}/stage1/final --prompt "a photo of " --frozen-dtype bf16 --max_epoch 1 --init_lr 1e-3
            --eval-annotations ${DATA}/captions.json --eval-max-images 3 --num_beams 2 --max_len 4 --min_len 1
            ${SHORT_RUN})
  expect_in("${err}" "tensors from the stage-1 model" "--init-qformer")
  last_json_line()
  string(JSON steps GET "${summary}" steps)
  if(NOT steps EQUAL 3)
    message(FATAL_ERROR "expected 3 steps (13 captions / 4), got ${steps}")
  endif()
  expect_files(${OUT}/final/config.json ${OUT}/final/model.safetensors ${OUT}/final/vocab.json
               ${OUT}/final/generation_config.json ${OUT}/loss_curves.svg ${OUT}/eval/captions_epoch0.json)
  # The captions of the validation split, scored as the COCO caption evaluation scores them.
  string(JSON cider GET "${summary}" eval CIDEr)
  string(JSON bleu4 GET "${summary}" eval Bleu_4)
  file(READ ${OUT}/eval/captions_epoch0.json results)
  string(JSON n_results LENGTH "${results}")
  if(NOT n_results EQUAL 3)
    message(FATAL_ERROR "expected 3 captions in eval/captions_epoch0.json: ${results}")
  endif()
  blip2_run(0 caption --model ${OUT}/final --image ${DATA}/images/chelsea.png --max-new-tokens 3
            --min-new-tokens 1 --num-beams 1)
  message(STATUS "stage 2 (OPT): 3 steps; caption runs on final/; eval CIDEr ${cider}, BLEU-4 ${bleu4}")

elseif(CASE STREQUAL "stage2_t5")
  set(OUT ${WORK}/stage2-t5)
  file(REMOVE_RECURSE ${OUT})
  blip2_run(0 train --stage 2 --model ${MODELS}/t5 --output_dir ${OUT} --shards ${DATA}/train-0.tar --iters-per-epoch 2
            --gradient_checkpointing true ${SHORT_RUN})
  last_json_line()
  expect_files(${OUT}/final/model.safetensors ${OUT}/final/spiece.model)
  blip2_run(0 caption --model ${OUT}/final --image ${DATA}/images/chelsea.png --max-new-tokens 3
            --min-new-tokens 1 --num-beams 1)
  message(STATUS "stage 2 (Flan-T5): 2 steps; caption runs on final/")

elseif(CASE STREQUAL "bad_images")
  # A missing image is skipped with a warning by default, and stops the run with --on-bad-image stop.
  set(args train --stage 1 --model ${MODELS}/itm --annotations ${DATA}/missing_image.jsonl --max_epoch 1 ${SHORT_RUN})
  file(REMOVE_RECURSE ${WORK}/bad-skip ${WORK}/bad-stop)
  blip2_run(0 ${args} --output_dir ${WORK}/bad-skip)
  expect_in("${err}" "warning: skipped an image: .*missing.png" "the skip warning")
  last_json_line()
  string(JSON skipped GET "${summary}" skipped_images)
  if(skipped LESS 1)
    message(FATAL_ERROR "no skipped image counted: ${summary}")
  endif()
  blip2_run(1 ${args} --output_dir ${WORK}/bad-stop --on-bad-image stop)
  expect_in("${err}" "error: .*missing.png" "--on-bad-image stop")
  message(STATUS "bad images: skipped with a warning, or an error naming the file")

elseif(CASE STREQUAL "errors")
  # Bad input stops before the model loads ("train: loaded" never printed), exit status 1.
  set(base train --stage 1 --model ${MODELS}/itm --output_dir ${WORK}/errors)
  function(expect_error pattern)
    blip2_run(1 ${ARGN})
    expect_in("${err}" "${pattern}" "error message")
    if(err MATCHES "train: loaded")
      message(FATAL_ERROR "the model was loaded before the error:\n${err}")
    endif()
  endfunction()
  expect_error("${DATA}/nope.json: cannot open the annotation file" ${base} --annotations ${DATA}/nope.json)
  expect_error("unknown option --learning-rate" ${base} --annotations ${DATA}/captions.json --learning-rate 1e-4)
  expect_error("--stage: expected 1 or 2, got '3'" train --stage 3 --model ${MODELS}/itm --output_dir ${WORK}/errors
               --annotations ${DATA}/captions.json)
  expect_error("--init_lr: 'init_lr' must be a number" ${base} --annotations ${DATA}/captions.json --init-lr fast)
  expect_error("empty.json: no annotations \\(the dataset is empty\\)" ${base} --annotations ${DATA}/empty.json)
  expect_error("captions-only.tar: no complete image-caption sample" ${base} --shards ${DATA}/captions-only.tar)
  expect_error("missing data: give --annotations" ${base})
  expect_error("missing --images <value>" ${base} --annotations ${DATA}/captions.json --images)
  expect_error("the data holds 13 examples: not one batch of 32" ${base} --annotations ${DATA}/captions.json
               --batch-size-train 32)
  expect_error("--ratio: 1 ratios for 2 datasets" ${base} --annotations ${DATA}/captions.json --shards ${DATA}/train-0.tar
               --ratio 2)
  expect_error("no Q-Former tokenizer: expected .*vocab.txt" train --stage 1 --model ${STAGE1_NO_TOKENIZER}
               --output_dir ${WORK}/errors --annotations ${DATA}/captions.json)
  expect_error("stage 2 trains a Blip2ForConditionalGeneration" train --stage 2 --model ${MODELS}/itm
               --output_dir ${WORK}/errors --annotations ${DATA}/captions.json)
  expect_error("--on-bad-image: expected skip or stop" ${base} --annotations ${DATA}/captions.json --on-bad-image ignore)
  file(WRITE ${WORK}/earlier-run/latest "checkpoint-1\n")
  expect_error("holds the checkpoints of an earlier run: continue it with --resume" train --stage 1 --model ${MODELS}/itm
               --output_dir ${WORK}/earlier-run --annotations ${DATA}/captions.json)
  expect_error("--output_dir .*captions.json/out: .*captions.json is not a folder" train --stage 1 --model ${MODELS}/itm
               --output_dir ${DATA}/captions.json/out --annotations ${DATA}/captions.json)
  expect_error("no such checkpoint directory" ${base} --annotations ${DATA}/captions.json --resume ${WORK}/nowhere)
  expect_error("--eval-images and --eval-max-images need --eval-annotations" ${base} --annotations ${DATA}/captions.json
               --eval-images ${DATA}/images)
  expect_error("missing_image.jsonl: evaluation image .*missing.png is not there" ${base} --annotations
               ${DATA}/captions.json --eval-annotations ${DATA}/missing_image.jsonl)
  message(STATUS "bad input: every error named before the model load")
else()
  message(FATAL_ERROR "unknown CASE '${CASE}'")
endif()
